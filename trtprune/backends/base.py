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
from contextlib import ExitStack
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
    """How to build and run: threads (CPU), device, precision, workspace and optimisation level (TensorRT),
    and how many independent sessions of each model a measurement times (:class:`Sessions`)."""

    FORMAT = 2  # format 1 had no sessions (one per model)
    ADDED = {"sessions": (2, 1)}

    threads: int = 1
    device: str = "cpu"  # "cpu" or "cuda"
    precision: str = "fp32"
    workspace_mb: int = 1024
    opt_level: int = 3
    timing_cache: str | None = None
    sessions: int = 1

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"unknown device {self.device!r}; use cpu or cuda")
        if self.threads < 1:
            raise UsageError(f"threads must be >= 1, not {self.threads}")
        if self.sessions < 1:
            raise UsageError(f"sessions must be >= 1, not {self.sessions}")


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


class Sessions(RunnerBase):
    """Independent sessions of one model timed as one: ``timed(k)`` runs ``k`` inferences on each, in an
    order that alternates, and returns their mean. On the CPUs measured here a session keeps its own
    speed for its life (four ONNX Runtime sessions of one detector, timed interleaved, sat up to 9%
    apart, batch after batch, each within 1-2% of itself): one session's number is partly that
    session's, not the model's. ``infer`` runs the first."""

    def __init__(self, runners: list[Runner]) -> None:
        self.runners = runners
        self.input_shape = runners[0].input_shape
        self._turns = 0

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.runners[0].infer(x)

    def timed(self, iterations: int) -> float:
        order = self.runners if self._turns % 2 == 0 else self.runners[::-1]
        self._turns += 1
        return sum(r.timed(iterations) for r in order) / len(order)

    def close(self) -> None:
        for r in self.runners:
            r.close()


def open_runner(
    backend: Backend, source: str | os.PathLike[str] | nn.Module, input_shape: tuple[int, ...], config: BackendConfig
) -> Runner:
    """``backend.prepare``, ``config.sessions`` times (:class:`Sessions` when more than once; on TensorRT
    each session is an engine of its own)."""
    if config.sessions == 1:
        return backend.prepare(source, input_shape, config)
    with ExitStack() as opened:  # one that fails closes those prepared before it
        runners = [opened.enter_context(backend.prepare(source, input_shape, config)) for _ in range(config.sessions)]
        opened.pop_all()
    return Sessions(runners)


BACKENDS: Registry[str] = Registry("backend")
BACKENDS.register("openvino", "trtprune.backends.openvino")
BACKENDS.register("ort", "trtprune.backends.ort")
BACKENDS.register("torch", "trtprune.backends.torch_backend")
BACKENDS.register("trt", "trtprune.backends.trt")


def get_backend(name: str) -> Backend:
    """Import the backend's module lazily and return its backend object."""
    return importlib.import_module(BACKENDS.get(name)).BACKEND
