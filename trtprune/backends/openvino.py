"""OpenVINO on the CPU: Intel's inference engine, for tables and deployments that target it.

The ONNX is read by OpenVINO's ONNX frontend and compiled for the "CPU" device with the
LATENCY performance hint (one stream), a fixed ``INFERENCE_NUM_THREADS`` (recorded with every
number) and ``INFERENCE_PRECISION_HINT=f32`` pinned: without it the CPU plugin may run bf16 or
f16 on CPUs that have them, and a table's numbers would not be fp32's. The timed loop reuses
one infer request whose inputs are set once, so it moves no data. ``openvino`` is imported
only inside this module's functions.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from trtprune.backends.base import BackendConfig, RunnerBase
from trtprune.backends.ort import cpu_name
from trtprune.core.errors import TrtpruneError, UsageError

INSTALL_HINT = "the openvino backend needs OpenVINO: pip install openvino (2026.0 or newer)"
DEVICE = "CPU"
HINT = "LATENCY"
INFERENCE_PRECISION = "f32"


def import_openvino() -> Any:
    """The ``openvino`` module, or a one-line :class:`UsageError` naming the install command."""
    try:
        import openvino as ov
    except (ImportError, OSError):  # missing, or a wheel without its shared libraries
        raise UsageError(INSTALL_HINT) from None
    return ov


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def compile_onnx(path: str | os.PathLike[str], config: BackendConfig) -> Any:
    """``path`` (ONNX, or OpenVINO's IR ``.xml``) compiled for the CPU with the pinned properties (the
    one place they are set).

    A file OpenVINO cannot read is a one-line :class:`TrtpruneError`. Dynamic dimensions are
    fixed to 1 (as ONNX Runtime binds them) so the compiled model is static.
    """
    ov = import_openvino()
    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except Exception as exc:  # OpenVINO raises RuntimeError and its own types
        raise TrtpruneError(f"OpenVINO cannot load {path}: {_first_line(exc)}") from None
    if any(inp.get_partial_shape().is_dynamic for inp in model.inputs):
        model.reshape(
            {
                inp.get_any_name(): [d.get_length() if d.is_static else 1 for d in inp.get_partial_shape()]
                for inp in model.inputs
            }
        )
    properties = {
        "PERFORMANCE_HINT": HINT,
        "INFERENCE_NUM_THREADS": int(config.threads),
        "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION,
    }
    return core.compile_model(model, DEVICE, properties)


class OpenVinoRunner(RunnerBase):
    def __init__(self, path: str | os.PathLike[str], config: BackendConfig) -> None:
        ov = import_openvino()
        self.compiled = compile_onnx(path, config)
        rng = np.random.default_rng(0)
        self._request = self.compiled.create_infer_request()
        self._inputs = []  # every input bound once to a random buffer (block sub-graphs have several)
        for port in self.compiled.inputs:
            dtype = port.get_element_type().to_dtype()
            x = rng.standard_normal(tuple(port.get_shape())).astype(dtype)
            self._request.set_tensor(port, ov.Tensor(x))
            self._inputs.append(x)
        self.input_shape = self._inputs[0].shape
        self._dtype = self._inputs[0].dtype
        self._output = self.compiled.output(0)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        # the compiled model's own request: the timed request keeps its bound inputs
        result = self.compiled({0: x.astype(self._dtype, copy=False)})
        return np.array(result[self._output])

    def timed(self, iterations: int) -> float:
        # InferRequest.infer is start_async + wait; calling them directly skips building the
        # Python dict of outputs every run
        start, wait = self._request.start_async, self._request.wait
        t0 = time.perf_counter()
        for _ in range(iterations):
            start()
            wait()
        return (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        self._request = None
        self.compiled = None


class OpenVinoBackend:
    name = "openvino"
    consumes = "onnx"

    def check_available(self, config: BackendConfig) -> None:
        import_openvino()
        if config.device != "cpu":
            raise UsageError("the openvino backend runs on the CPU; use --device cpu")
        if config.precision != "fp32":
            raise UsageError(
                f"the openvino backend runs fp32 only (precision pinned to f32), not {config.precision}; "
                "use --precision fp32, or --backend ort or trt for fp16 and int8"
            )

    def prepare(self, source: Any, input_shape: tuple[int, ...], config: BackendConfig) -> OpenVinoRunner:
        if not isinstance(source, (str, os.PathLike)):
            raise TrtpruneError(f"the openvino backend takes an .onnx or .xml path, not {type(source).__name__}")
        self.check_available(config)
        return OpenVinoRunner(source, config)

    def deploy(self, onnx_path: Path, out: Path, config: BackendConfig) -> dict[str, str]:
        """The deployable artefact: OpenVINO's IR, ``model.xml`` with its weights in ``model.bin``
        (fp32 weights: ``save_model`` would otherwise compress them to fp16)."""
        self.check_available(config)
        ov = import_openvino()
        try:
            model = ov.Core().read_model(str(onnx_path))
        except Exception as exc:
            raise TrtpruneError(f"OpenVINO cannot load {onnx_path}: {_first_line(exc)}") from None
        ov.save_model(model, str(Path(out) / "model.xml"), compress_to_fp16=False)
        return {"engine": "model.xml"}

    def environment(self, config: BackendConfig) -> dict[str, Any]:

        ov = import_openvino()
        return {
            "engine": "openvino",
            "version": ov.get_version(),
            "device": config.device,
            "processor": cpu_name(),
            "threads": config.threads,
            "machine": platform.machine(),
            "precision": config.precision,
            "inference_precision": INFERENCE_PRECISION,
            "performance_hint": HINT,
        }


BACKEND = OpenVinoBackend()
