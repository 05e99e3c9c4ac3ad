"""Top-1 of an exported ONNX model in ONNX Runtime, fed with the dataset's preprocessing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from trtprune.engine.export import ort_session

if TYPE_CHECKING:
    from torch.utils.data import Dataset


def evaluate_onnx(path: str | os.PathLike[str], dataset: Dataset, threads: int | None = None) -> float:
    """Top-1 accuracy in [0, 1]; batches follow the model's (fixed or dynamic) batch size."""

    sess = ort_session(path, threads)
    inp = sess.get_inputs()[0]
    batch = inp.shape[0] if isinstance(inp.shape[0], int) else 256
    correct = total = 0
    xs, ys = [], []

    def flush() -> None:
        nonlocal correct, total
        x = np.stack(xs).astype(np.float32)
        n = len(x)
        if n < batch and isinstance(inp.shape[0], int):
            x = np.concatenate([x, np.zeros((batch - n, *x.shape[1:]), np.float32)])
        logits = sess.run(None, {inp.name: x})[0][:n]
        correct += int((logits.argmax(1) == np.asarray(ys)).sum())
        total += n
        xs.clear()
        ys.clear()

    for i in range(len(dataset)):
        x, y = dataset[i]
        xs.append(np.asarray(x))
        ys.append(int(y))
        if len(xs) == batch:
            flush()
    if xs:
        flush()
    return correct / max(total, 1)
