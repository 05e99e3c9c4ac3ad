"""The backend interface and registry.

A backend turns a network into a :class:`Runner` (``prepare``), turns an exported ONNX
into the artefact users deploy (``deploy``: ONNX Runtime's optimised model, TensorRT's
``.plan``, OpenVINO's IR) and describes the environment its numbers come from (``environment``). ONNX-consuming backends
(``ort``, ``openvino``, ``trt``) take an ONNX file; the ``torch`` backend takes the module.
Timing is never done here: the shared harness in :mod:`trtprune.engine.timing` calls
``runner.timed(k)``, which runs ``k`` inferences back to back and returns the
elapsed milliseconds by the engine's own clock (wall clock on CPU, CUDA events
around a CUDA-graph replay on GPU).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from trtprune.core.errors import TrtpruneError, UsageError
from trtprune.core.records import Record
from trtprune.core.registry import Registry

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class BackendConfig(Record):
    """How to build and run: threads (CPU), device, precision, workspace and optimisation level (TensorRT)."""

    threads: int = 1
    device: str = "cpu"  # "cpu" or "cuda"
    precision: str = "fp32"
    workspace_mb: int = 1024
    opt_level: int = 3
    timing_cache: str | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"unknown device {self.device!r}; use cpu or cuda")
        if self.threads < 1:
            raise UsageError(f"threads must be >= 1, not {self.threads}")


class Runner(Protocol):
    """A prepared engine or session (a context manager)."""

    input_shape: tuple[int, ...]

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Validate ``x`` against the engine's input and return the first output."""
        ...

    def timed(self, iterations: int) -> float:
        """Run ``iterations`` inferences back to back on the bound input; elapsed milliseconds."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: object) -> None: ...


class Backend(Protocol):
    name: str
    consumes: str  # "onnx" or "module"

    def check_available(self, config: BackendConfig) -> None:
        """Raise a one-line TrtpruneError naming the install command if the engine is missing."""
        ...

    def prepare(
        self, source: str | os.PathLike[str] | nn.Module, input_shape: tuple[int, ...], config: BackendConfig
    ) -> Runner: ...

    def environment(self, config: BackendConfig) -> dict[str, Any]: ...

    def deploy(self, onnx_path: Path, out: Path, config: BackendConfig) -> dict[str, str]:
        """Turn ``onnx_path`` (at the precision already) into the artefact to deploy, written under
        ``out``; returns ``{"engine": file name}``, or nothing for a backend that runs modules."""
        ...


class RunnerBase:
    """Shared context-manager and validation plumbing; subclasses implement ``infer_impl`` and ``timed``."""

    input_shape: tuple[int, ...] = ()

    def infer(self, x: np.ndarray) -> np.ndarray:

        if tuple(x.shape) != tuple(self.input_shape):
            raise TrtpruneError(f"input shape {tuple(x.shape)} does not match the engine's {tuple(self.input_shape)}")
        return self.infer_impl(np.ascontiguousarray(x))

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


BACKENDS: Registry[str] = Registry("backend")
BACKENDS.register("openvino", "trtprune.backends.openvino")
BACKENDS.register("ort", "trtprune.backends.ort")
BACKENDS.register("torch", "trtprune.backends.torch_backend")
BACKENDS.register("trt", "trtprune.backends.trt")


def get_backend(name: str) -> Backend:
    """Import the backend's module lazily and return its backend object."""
    return importlib.import_module(BACKENDS.get(name)).BACKEND
