"""Classification: cross-entropy on logits (or distillation from a teacher's), top-1 accuracy."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from trtprune.engine.evaluation import evaluate_onnx
from trtprune.tasks.base import TASKS, Task

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset


def logits_of(out: Any) -> torch.Tensor:
    """Models such as GoogLeNet return (logits, aux...) tuples in training mode."""
    return out[0] if isinstance(out, tuple) else out


def _batch_loss(model: nn.Module, batch: Any, device: torch.device, distill: Any) -> tuple[torch.Tensor, int]:
    import torch
    import torch.nn.functional as F

    x, y = batch
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    logits = logits_of(model(x))
    loss = F.cross_entropy(logits, y) if distill is None else distill.loss(logits, x, y)
    return loss, int(y.shape[0])


def _evaluate(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device) -> float:
    import torch
    from torch.utils.data import DataLoader

    correct = total = 0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            x, y = x.to(device), y.to(device)
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            correct += int((logits_of(model(x)).argmax(1) == y).sum())
            total += int(y.numel())
    return correct / total


def _evaluate_onnx(path: str | os.PathLike[str], dataset: Dataset, threads: int | None) -> dict[str, float]:
    return {"top1": evaluate_onnx(path, dataset, threads)}


TASKS.register(
    "classify",
    Task(
        name="classify",
        model_noun="classifier",
        data_noun="classification",
        metric="top1",
        metric_label="top-1",
        data_hint="pass classification data (--data fashion-mnist, cifar10 or imagefolder)",
        batch_loss=_batch_loss,
        evaluate=_evaluate,
        evaluate_onnx=_evaluate_onnx,
    ),
)
