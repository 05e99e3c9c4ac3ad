"""Measuring any model file with the shared harness."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from trtprune.backends import BackendConfig, get_backend, open_runner
from trtprune.core.errors import TrtpruneError
from trtprune.engine.timing import TimingConfig, measure, measure_interleaved
from trtprune.models.loading import load_model


def bench_path(
    path: str | os.PathLike[str], backend_name: str, timing: TimingConfig = TimingConfig(), **backend_kwargs: Any
) -> dict[str, Any]:
    """Median, p90 and spread of one inference of ``path`` (ONNX, TensorRT plan, OpenVINO IR or trtprune
    checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise TrtpruneError(f"{path} not found")
    config = BackendConfig(**backend_kwargs)
    backend = get_backend(backend_name)
    backend.check_available(config)
    if backend.consumes == "module":
        if path.suffix != ".pt":
            raise TrtpruneError(f"the torch backend measures trtprune checkpoints (.pt), not {path.suffix} files")

        loaded = load_model(None, checkpoint=path)
        runner = open_runner(backend, loaded.model, loaded.input_shape, config)
    else:
        if path.suffix not in (".onnx", ".plan", ".engine", ".xml"):
            raise TrtpruneError(
                f"{path} is not an ONNX model (.onnx), a TensorRT engine (.plan) or an OpenVINO IR (.xml)"
            )
        runner = open_runner(backend, path, (), config)
    with runner:
        t = measure(runner.timed, timing)
    return {
        "path": str(path),
        "backend": backend_name,
        "timing": t.to_json(),
        "environment": backend.environment(config),
    }


def measure_onnx_side_by_side(
    backend_name: str, cfg: BackendConfig, paths: dict[str, Path], reference: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Time every ONNX file of ``paths`` in one interleaved harness call in ``backend_name`` with
    ``cfg``; returns (name -> Timing, environment), or None when that backend takes modules rather
    than ONNX files. With ``reference`` (one of ``paths``' names) every other timing also carries
    its ratio to it, paired round by round (drift cancels)."""
    backend = get_backend(backend_name)
    if backend.consumes != "onnx":
        return None
    with ExitStack() as stack:
        timed = {name: stack.enter_context(open_runner(backend, p, (), cfg)).timed for name, p in paths.items()}
        return measure_interleaved(timed, reference=reference), backend.environment(cfg)
