"""Turning a (pruned) network into a prepared engine: export at the precision, then the backend builds it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from trtprune.backends import BackendConfig, get_backend, open_runner
from trtprune.engine.precision import export_with_precision

if TYPE_CHECKING:
    from torch import nn

    from trtprune.backends.base import Runner


def prepare(
    model: nn.Module,
    input_shape: tuple[int, ...],
    backend_name: str,
    config: BackendConfig,
    workdir: str | os.PathLike[str] | None = None,
    keep_onnx: str | os.PathLike[str] | None = None,
    example_inputs: tuple | None = None,
) -> Runner:
    """Prepare ``model`` in the backend (``config.sessions`` sessions): ONNX backends get an export at
    ``config.precision``."""

    backend = get_backend(backend_name)
    if backend.consumes == "module":
        return open_runner(backend, model, input_shape, config)
    if keep_onnx is not None:
        path = export_with_precision(model, input_shape, keep_onnx, config.precision, example_inputs=example_inputs)
        return open_runner(backend, path, input_shape, config)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = export_with_precision(
            model, input_shape, Path(tmp) / "candidate.onnx", config.precision, example_inputs=example_inputs
        )
        return open_runner(backend, path, input_shape, config)
