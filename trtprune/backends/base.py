"""The backend interface and registry."""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from trtprune.registry import Registry


@dataclass(frozen=True)
class BackendConfig:
    threads: int = 1
    device: str = "cpu"  # "cpu" or "cuda"
    precision: str = "fp32"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Runner(Protocol):
    """A prepared engine: ``infer`` validates and runs; ``run`` is the timed hot path."""

    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def run(self) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    name: str

    def prepare(self, onnx_path: str | os.PathLike[str], config: BackendConfig) -> Runner: ...

    def environment(self, config: BackendConfig) -> dict[str, Any]: ...


BACKENDS: Registry[str] = Registry("backend")
BACKENDS.register("ort", "trtprune.backends.ort")
BACKENDS.register("torch", "trtprune.backends.torch_backend")
BACKENDS.register("trt", "trtprune.backends.trt")


def get_backend(name: str) -> Backend:
    """Import the backend's module lazily and return its backend object."""
    return importlib.import_module(BACKENDS.get(name)).BACKEND
