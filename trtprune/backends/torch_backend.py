"""PyTorch eager: the reference engine, run on the module itself (no export).

CPU: eval mode, channels-last, ``torch.inference_mode``, a fixed intra-op
thread count, wall-clock timing. CUDA: cuDNN autotuning, a static input
buffer and a CUDA-graph replay timed by CUDA events (:class:`CudaGraphTimer`).
"fp32" means IEEE fp32 (TF32 convolutions off while this runner computes), so
the number matches its label; "fp16" runs the module in half on CUDA; INT8
needs an engine with a quantized graph (``ort`` or ``trt``).
"""

from __future__ import annotations

import contextlib
import copy
import platform
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.backends.base import BackendConfig, RunnerBase
from trtprune.backends.gpu import CudaGraphTimer, gpu_environment
from trtprune.backends.ort import cpu_name
from trtprune.core.errors import TrtpruneError

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _ieee_fp32(enabled: bool) -> Iterator[None]:
    """Turn TF32 off for cuDNN convolutions and matmuls inside the block; restore afterwards."""
    import torch

    if not enabled:
        yield
        return
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = (conv.fp32_precision, matmul.fp32_precision)
    conv.fp32_precision, matmul.fp32_precision = "ieee", "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


class TorchRunner(RunnerBase):
    def __init__(self, module: nn.Module, input_shape: tuple[int, ...], config: BackendConfig) -> None:
        import torch

        self._torch = torch
        self.config = config
        self.input_shape = tuple(int(d) for d in input_shape)
        self._cuda = config.device == "cuda"
        self._threads = config.threads
        self._dtype = torch.float16 if config.precision == "fp16" else torch.float32
        self._ieee = self._cuda and config.precision == "fp32"
        self._timer = None
        if len(self.input_shape) == 4:
            self._memory_format = torch.channels_last
        else:
            self._memory_format = torch.contiguous_format
        device = torch.device("cuda" if self._cuda else "cpu")
        if self._cuda:
            torch.backends.cudnn.benchmark = True
        else:
            torch.set_num_threads(config.threads)
        # a private copy: moving, casting or re-laying out the caller's module would be a side effect
        module = copy.deepcopy(module).eval().to(device=device, dtype=self._dtype)
        self.module = module.to(memory_format=self._memory_format) if len(self.input_shape) == 4 else module
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(self.input_shape, generator=gen).to(device=device, dtype=self._dtype)
        self._x = x.contiguous(memory_format=self._memory_format)
        try:
            with torch.inference_mode(), _ieee_fp32(self._ieee):
                self._out = self.module(self._x)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise TrtpruneError(f"the model cannot run on input shape {self.input_shape}: {_first_line(exc)}") from None
        if self._cuda:
            torch.cuda.synchronize()
            with _ieee_fp32(self._ieee):
                self._timer = CudaGraphTimer(self._enqueue)
            self.uses_graph = self._timer.uses_graph

    def _enqueue(self) -> None:
        with self._torch.inference_mode():
            self._out = self.module(self._x)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        t = torch.from_numpy(x).to(device=self._x.device, dtype=self._dtype)
        t = t.contiguous(memory_format=self._memory_format)
        self._set_threads()
        with torch.inference_mode(), _ieee_fp32(self._ieee):
            y = self.module(t)
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.float().cpu().numpy().astype(np.float32, copy=False)

    def _set_threads(self) -> None:
        if not self._cuda and self._torch.get_num_threads() != self._threads:
            self._torch.set_num_threads(self._threads)

    def timed(self, iterations: int) -> float:
        if self._timer is not None:
            with _ieee_fp32(self._ieee and not self._timer.uses_graph):
                return self._timer.timed(iterations)
        torch = self._torch
        self._set_threads()
        module, x = self.module, self._x
        with torch.inference_mode():
            t0 = time.perf_counter()
            for _ in range(iterations):
                module(x)
            return (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        self.module = None
        self._x = self._out = None


class TorchBackend:
    name = "torch"
    consumes = "module"

    def check_available(self, config: BackendConfig) -> None:
        import torch

        if config.device == "cuda" and not torch.cuda.is_available():
            raise TrtpruneError("no CUDA GPU here; use --device cpu")

    def prepare(self, source: Any, input_shape: tuple[int, ...], config: BackendConfig) -> TorchRunner:
        from torch import nn

        if config.precision == "int8":
            raise TrtpruneError(
                "int8 needs the trt or ort backend (a quantized ONNX); the torch backend runs fp32 or fp16"
            )
        if config.precision == "fp16" and config.device != "cuda":
            raise TrtpruneError("the torch backend runs fp16 on cuda only; use --device cuda or --precision fp32")
        if not isinstance(source, nn.Module):
            raise TrtpruneError(f"the torch backend takes a torch module, not {type(source).__name__}")
        self.check_available(config)
        return TorchRunner(source, input_shape, config)

    def deploy(self, onnx_path: Path, out: Path, config: BackendConfig) -> dict[str, str]:
        """Nothing beyond the checkpoint and ONNX every run writes: PyTorch runs the module itself."""
        return {}

    def environment(self, config: BackendConfig) -> dict[str, Any]:
        import torch

        env: dict[str, Any] = {
            "engine": "torch",
            "version": torch.__version__,
            "device": config.device,
            "processor": cpu_name(),
            "threads": config.threads,
            "machine": platform.machine(),
            "precision": config.precision,
        }
        if config.device == "cuda":
            env.update(gpu_environment())
            env["cudnn"] = torch.backends.cudnn.version()
            env["tf32"] = False  # fp32 runs with TF32 off; fp16 has no fp32 convolutions
        return env


BACKEND = TorchBackend()
