"""ONNX Runtime: the embedded default engine (CPU provider; CUDA when present and asked for)."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from trtprune.backends.base import BackendConfig
from trtprune.errors import TrtpruneError


class OrtRunner:
    def __init__(self, path: str | os.PathLike[str], config: BackendConfig) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = config.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        if config.device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise TrtpruneError("ONNX Runtime's CUDA provider is not available here; use --device cpu")
            providers = ["CUDAExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        inp = self.session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        dtype = np.float16 if "float16" in inp.type else np.float32
        self.input_name = inp.name
        self._x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
        self._binding = self.session.io_binding()
        self._binding.bind_cpu_input(self.input_name, self._x)
        for out in self.session.get_outputs():
            self._binding.bind_output(out.name, "cpu" if config.device == "cpu" else "cuda")

    def infer(self, x: np.ndarray) -> np.ndarray:
        if tuple(x.shape) != tuple(self._x.shape):
            raise TrtpruneError(f"input shape {tuple(x.shape)} does not match the model's {tuple(self._x.shape)}")
        return self.session.run(None, {self.input_name: x.astype(self._x.dtype)})[0]

    def run(self) -> None:
        self.session.run_with_iobinding(self._binding)

    def sync(self) -> None:
        pass

    def close(self) -> None:
        self.session = None


class OrtBackend:
    name = "ort"

    def prepare(self, onnx_path: str | os.PathLike[str], config: BackendConfig) -> OrtRunner:
        return OrtRunner(onnx_path, config)

    def environment(self, config: BackendConfig) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "engine": "onnxruntime",
            "version": ort.__version__,
            "device": config.device,
            "processor": _cpu_name(),
            "threads": config.threads,
            "precision": config.precision,
            "machine": platform.machine(),
        }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


BACKEND = OrtBackend()
