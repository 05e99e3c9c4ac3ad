"""Side-by-side measurements of exported models: the data's metrics in ORT (top-1; a detector's COCO
mAP) and latency with the shared harness."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trtprune.backends import BackendConfig, get_backend, open_runner
from trtprune.core.errors import TrtpruneError
from trtprune.data import get_dataset, get_spec
from trtprune.engine.export import load_proto, read_metadata
from trtprune.engine.timing import measure_interleaved
from trtprune.tasks import get_task


def compare_onnx(
    paths: list[Path], data: str, data_root: str | os.PathLike[str] | None, threads: int = 1, limit: int | None = None
) -> list[dict[str, Any]]:
    """Evaluate and time every ONNX model; latencies are measured interleaved in one process."""

    spec = get_spec(data)
    task = get_task(spec.task)
    for p in paths:
        pre = read_metadata(p).get("trtprune.preprocessing")
        if pre and json.loads(pre).get("mean") != list(spec.preprocessing.mean):
            raise TrtpruneError(f"{p} was trained with other preprocessing than {data}'s; evaluate it on its own data")
    sizes = {tuple(_input_size(p)) for p in paths}
    if len(sizes) > 1:
        raise TrtpruneError(
            f"the models take different inputs ({', '.join(map(str, sorted(sizes)))}): compare like with like"
        )
    test_set = get_dataset(data, "test", data_root, limit=limit, input_size=sizes.pop() if sizes else None)
    backend, config = get_backend("ort"), BackendConfig(threads=threads)
    runners = {str(p): open_runner(backend, p, (), config) for p in paths}
    timings = measure_interleaved({k: r.timed for k, r in runners.items()})
    rows = []
    for p in paths:
        proto = load_proto(p)
        params = sum(int(_numel(t)) for t in proto.graph.initializer if len(t.dims) > 0)
        t = timings[str(p)]
        rows.append(
            {
                "onnx": str(p),
                "params": params,
                **task.evaluate_onnx(p, test_set, threads),
                "median_ms": t.median_ms,
                "p90_ms": t.p90_ms,
                "spread": t.spread,
                "noisy": t.noisy,
                "environment": backend.environment(config),
            }
        )
    return rows


def _input_size(path: Path) -> tuple[int, ...]:
    """(C, H, W) of an ONNX model's first input."""

    dims = load_proto(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return tuple(int(d.dim_value) for d in dims[1:])


def _numel(tensor: Any) -> int:
    n = 1
    for d in tensor.dims:
        n *= d
    return n
