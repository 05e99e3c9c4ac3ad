"""ONNX Runtime: the embedded default engine (CPU provider; CUDA provider when present and asked for).

Full graph optimisation, sequential execution with a fixed intra-op thread count
(recorded with every number), IOBinding so the timed loop moves no data.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from trtprune.backends.base import BackendConfig, RunnerBase
from trtprune.backends.gpu import gpu_environment
from trtprune.core.errors import TrtpruneError


def session(
    path: str | os.PathLike[str],
    threads: int | None = None,
    device: str = "cpu",
    optimized_path: str | os.PathLike[str] | None = None,
):
    """An ONNX Runtime session, configured here and nowhere else (timing, evaluation, deployment).

    Full graph optimisation, sequential execution, quiet logs; ``threads`` fixes the intra-op
    thread count (one inter-op thread), None leaves ONNX Runtime's default; ``optimized_path``
    also writes the optimised model (the deployable artefact). A file ONNX Runtime cannot load
    is a one-line :class:`TrtpruneError`.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrtpruneError(f"ONNX Runtime cannot load {path}: {first}") from None


class OrtRunner(RunnerBase):
    def __init__(self, path: str | os.PathLike[str], config: BackendConfig) -> None:
        self.session = session(path, config.threads, config.device)
        rng = np.random.default_rng(0)
        self._binding = self.session.io_binding()
        self._inputs = []  # every input bound to a random buffer (block sub-graphs have several)
        for inp in self.session.get_inputs():
            shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)
            x = rng.standard_normal(shape).astype(np.float16 if "float16" in inp.type else np.float32)
            self._binding.bind_cpu_input(inp.name, x)
            self._inputs.append(x)
        first = self.session.get_inputs()[0]
        self.input_name, self.input_shape, self._dtype = first.name, self._inputs[0].shape, self._inputs[0].dtype
        for out in self.session.get_outputs():
            self._binding.bind_output(out.name, "cpu" if config.device == "cpu" else "cuda")
        self._cuda = config.device == "cuda"

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x.astype(self._dtype)})[0]

    def timed(self, iterations: int) -> float:
        run = self.session.run_with_iobinding
        binding = self._binding
        t0 = time.perf_counter()
        for _ in range(iterations):
            run(binding)
        if self._cuda:
            binding.synchronize_outputs()
        return (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        self.session = None


class OrtBackend:
    name = "ort"
    consumes = "onnx"

    def check_available(self, config: BackendConfig) -> None:
        import onnxruntime as ort

        if config.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise TrtpruneError(
                "ONNX Runtime's CUDA provider is not available here (no GPU or CUDA 13 runtime); use --device cpu"
            )

    def prepare(self, source: Any, input_shape: tuple[int, ...], config: BackendConfig) -> OrtRunner:
        self.check_available(config)
        return OrtRunner(source, config)

    def deploy(self, onnx_path: Path, out: Path, config: BackendConfig) -> dict[str, str]:
        """The deployable artefact: ONNX Runtime's optimised model, ``model.ort.onnx``."""
        self.check_available(config)
        session(onnx_path, config.threads, config.device, optimized_path=out / "model.ort.onnx")
        return {"engine": "model.ort.onnx"}

    def environment(self, config: BackendConfig) -> dict[str, Any]:
        import onnxruntime as ort

        env = {
            "engine": "onnxruntime",
            "version": ort.__version__,
            "device": config.device,
            "processor": cpu_name(),
            "threads": config.threads,
            "machine": platform.machine(),
        }
        if config.device == "cuda":
            env.update(gpu_environment())
        return env


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


BACKEND = OrtBackend()
