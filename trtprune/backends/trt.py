"""TensorRT 10/11: ONNX -> serialized engine (``.plan``) -> CUDA-graph-timed runner.

Written to the documented Python API of TensorRT 10 and 11 (``build_serialized_network``,
name-based IO tensors, ``set_tensor_address`` and ``execute_async_v3``; none of the
binding-index calls TensorRT 10 removed). Networks are strongly typed, so precision
comes from the ONNX itself (FP16 initializers or QuantizeLinear/DequantizeLinear
nodes): no FP16/INT8 builder flags and no calibrators, which TensorRT 11 removed.
"fp32" means IEEE fp32 (the TF32 flag is cleared) so a number matches its label.

All builds share one persistent timing cache (``BackendConfig.timing_cache``),
loaded before and saved atomically after each build. Buffers, the stream, events
and CUDA graphs are torch's; ``tensorrt`` and ``torch`` are imported only inside
functions, so this module imports without them.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.backends.base import BackendConfig, RunnerBase
from trtprune.backends.gpu import CudaGraphTimer, gpu_environment
from trtprune.backends.ort import cpu_name
from trtprune.core.atomic import atomic_path
from trtprune.core.errors import TrtpruneError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

INSTALL_HINT = "TensorRT is not installed: pip install 'trtprune[trt]' (needs NVIDIA's wheel and a CUDA GPU)"
PLAN_SUFFIXES = (".plan", ".engine", ".trt")
OPT_LEVELS = range(0, 6)  # IBuilderConfig.builder_optimization_level accepts 0..5 (default 3)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or a one-line TrtpruneError naming the install command."""
    try:
        import tensorrt as trt
    except (ImportError, OSError, RuntimeError):  # missing, a stub, or a wheel without its libraries
        raise TrtpruneError(INSTALL_HINT) from None
    if not hasattr(trt, "Builder"):  # PyPI's placeholder package imports but has no API
        raise TrtpruneError(INSTALL_HINT)
    return trt


def _major_version(trt: Any) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        return 0


# Every TensorRT class, member and enum value this backend touches (TensorRT 10/11 Python API):
# tests/backends/test_trt_api.py checks this list against the code below and against the names declared in
# PyPI's real tensorrt-cu12/cu13 bindings. TensorRT 10 removed build_engine, execute_async_v2 and
# the binding-index calls; 11 removed the FP16/INT8 builder flags (precision comes from the ONNX).
TENSORRT_API = (
    "Logger", "Logger.WARNING",
    "Builder", "Builder.create_network", "Builder.create_builder_config", "Builder.create_optimization_profile",
    "Builder.build_serialized_network",
    "NetworkDefinitionCreationFlag", "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
    "OnnxParser", "OnnxParser.parse", "OnnxParser.get_error", "OnnxParser.num_errors", "ParserError.desc",
    "IBuilderConfig", "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.builder_optimization_level",
    "IBuilderConfig.clear_flag", "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache",
    "IBuilderConfig.get_timing_cache", "IBuilderConfig.add_optimization_profile",
    "MemoryPoolType.WORKSPACE", "BuilderFlag.TF32", "ITimingCache.serialize",
    "INetworkDefinition", "INetworkDefinition.num_inputs", "INetworkDefinition.get_input", "ITensor.shape",
    "ITensor.name", "IOptimizationProfile.set_shape",
    "Runtime", "Runtime.deserialize_cuda_engine",
    "ICudaEngine", "ICudaEngine.create_execution_context", "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name",
    "ICudaEngine.get_tensor_mode", "ICudaEngine.get_tensor_dtype", "ICudaEngine.get_tensor_shape",
    "TensorIOMode.INPUT", "TensorIOMode.OUTPUT",
    "IExecutionContext", "IExecutionContext.get_tensor_shape", "IExecutionContext.set_tensor_address",
    "IExecutionContext.set_input_shape", "IExecutionContext.execute_async_v3",
    "DataType", "DataType.FLOAT", "DataType.HALF", "DataType.BF16", "DataType.INT8", "DataType.UINT8",
    "DataType.INT32", "DataType.INT64", "DataType.BOOL",
)  # fmt: skip


@functools.cache
def _logger() -> Any:
    """One TensorRT logger for the process (builder and runtime share it), warnings and errors only."""
    trt = import_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


def onnx_precision(path: str | os.PathLike[str]) -> str:
    """The precision an ONNX carries: ``int8`` (Q/DQ nodes), ``fp16`` (FP16 inputs or initializers) or ``fp32``."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node):
        return "int8"
    fp16 = onnx.TensorProto.FLOAT16
    if any(i.type.tensor_type.elem_type == fp16 for i in graph.input) or any(
        t.data_type == fp16 for t in graph.initializer
    ):
        return "fp16"
    return "fp32"


def _attach_timing_cache(builder_config: Any, path: Path) -> int:
    """Load the shared timing cache from ``path`` (if any) into ``builder_config``; bytes loaded."""
    data = path.read_bytes() if path.is_file() else b""
    try:
        cache = builder_config.create_timing_cache(data) if data else None
    except (RuntimeError, TypeError, ValueError):  # a truncated or foreign file
        cache = None
    if cache is not None and builder_config.set_timing_cache(cache, ignore_mismatch=False):
        log.info("loaded timing cache %s (%d bytes)", path, len(data))
        return len(data)
    if data:
        log.warning(
            "timing cache %s was made on another GPU or TensorRT version (or is corrupt); starting a new one", path
        )
    builder_config.set_timing_cache(builder_config.create_timing_cache(b""), ignore_mismatch=False)
    return 0


def _save_timing_cache(builder_config: Any, path: Path) -> None:
    cache = builder_config.get_timing_cache()
    if cache is None:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(cache.serialize()))
    log.info("saved timing cache %s", path)


def _add_static_profile(builder: Any, network: Any, builder_config: Any, input_shape: tuple[int, ...] | None) -> None:
    """Pin dynamic input dimensions (e.g. a dynamic batch) to ``input_shape`` with one optimization profile."""
    dynamic = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if any(d < 0 for d in tuple(tensor.shape)):
            dynamic.append(tensor)
    if not dynamic:
        return
    if len(dynamic) > 1 or not input_shape:
        names = ", ".join(t.name for t in dynamic)
        raise TrtpruneError(f"inputs {names} have dynamic shapes; export the ONNX with a static input shape")
    tensor, shape = dynamic[0], tuple(int(d) for d in input_shape)
    onnx_shape = tuple(tensor.shape)
    if len(onnx_shape) != len(shape) or any(d >= 0 and d != s for d, s in zip(onnx_shape, shape, strict=False)):
        raise TrtpruneError(f"input {tensor.name} has shape {onnx_shape}, which does not fit the requested {shape}")
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, shape, shape, shape)
    builder_config.add_optimization_profile(profile)


def build_engine_bytes(
    onnx_path: str | os.PathLike[str], config: BackendConfig, input_shape: tuple[int, ...] | None = None
) -> bytes:
    """Build a serialized TensorRT engine from an ONNX file.

    Uses ``config.workspace_mb``, ``config.opt_level`` and the shared timing cache
    at ``config.timing_cache``. ``config.precision`` must match what the ONNX
    carries (TensorRT takes precision from the graph). ``input_shape`` pins a
    dynamic input dimension, if the ONNX has one.
    """
    trt = import_tensorrt()
    path = Path(onnx_path)
    if not path.is_file():
        raise TrtpruneError(f"ONNX file not found: {path}")
    if config.opt_level not in OPT_LEVELS:
        raise TrtpruneError(f"TensorRT optimisation level must be 0..5, not {config.opt_level}")
    found = onnx_precision(path)
    if found != config.precision:
        raise TrtpruneError(
            f"{path} is a {found} ONNX but precision {config.precision} was asked; TensorRT takes precision from the ONNX, so export it at {config.precision}"
        )
    logger = _logger()
    builder = trt.Builder(logger)
    flags = 0
    # TensorRT 10 needs STRONGLY_TYPED; 11 is always strongly typed and only keeps the flag, deprecated and ignored
    if _major_version(trt) < 11 and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(path.read_bytes(), path=str(path)):
        errors = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        detail = "; ".join(" ".join(str(e).split()) for e in errors) or "unknown parser error"
        raise TrtpruneError(f"TensorRT cannot parse {path}: {detail}")

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    builder_config.builder_optimization_level = config.opt_level
    if config.precision == "fp32":
        builder_config.clear_flag(trt.BuilderFlag.TF32)
    _add_static_profile(builder, network, builder_config, input_shape)
    cache_path = Path(config.timing_cache) if config.timing_cache else None
    if cache_path is not None:
        _attach_timing_cache(builder_config, cache_path)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise TrtpruneError(f"TensorRT could not build an engine from {path} (see the TensorRT log above)")
    log.info("built TensorRT engine from %s in %.1f s", path, time.perf_counter() - t0)
    if cache_path is not None:
        _save_timing_cache(builder_config, cache_path)
    return bytes(serialized)


def save_plan(plan: bytes, path: str | os.PathLike[str]) -> Path:
    """Write a serialized engine to ``path`` (e.g. ``model.plan``); the file is complete or absent."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(plan))
    return path


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    import torch

    table = {
        "FLOAT": torch.float32,
        "HALF": torch.float16,
        "BF16": torch.bfloat16,
        "INT8": torch.int8,
        "UINT8": torch.uint8,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "BOOL": torch.bool,
    }
    for name, torch_dtype in table.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return torch_dtype
    raise TrtpruneError(f"engine tensors of type {dtype} are not supported")


class TrtRunner(RunnerBase):
    """Runs a deserialized engine on torch CUDA buffers; ``timed`` replays a CUDA graph of one enqueue."""

    def __init__(self, plan: bytes, input_shape: tuple[int, ...] | None, config: BackendConfig) -> None:
        import torch

        trt = import_tensorrt()
        self._torch = torch
        self.config = config
        self._timer = None
        self.runtime = trt.Runtime(_logger())
        self.engine = self.runtime.deserialize_cuda_engine(bytes(plan))
        if self.engine is None:
            raise TrtpruneError(
                "TensorRT cannot load the engine: built by another TensorRT version or for another GPU? Rebuild it from the ONNX"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise TrtpruneError("TensorRT cannot create an execution context (out of GPU memory?)")

        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if not input_names or not output_names:
            raise TrtpruneError("the engine has no inputs or no outputs")
        gen = torch.Generator().manual_seed(0)
        self.inputs: dict[str, torch.Tensor] = {}
        for i, name in enumerate(input_names):
            shape = self._input_shape(name, input_shape if i == 0 else None)
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            if dtype.is_floating_point:
                t = torch.randn(shape, generator=gen).to(device="cuda", dtype=dtype)
            else:
                t = torch.zeros(shape, dtype=dtype, device="cuda")
            self.inputs[name] = t
        self.outputs: dict[str, torch.Tensor] = {}
        for name in output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise TrtpruneError(f"output {name} has a data-dependent shape {shape}; not supported")
            self.outputs[name] = torch.empty(
                shape, dtype=_torch_dtype(trt, self.engine.get_tensor_dtype(name)), device="cuda"
            )
        for name, buffer in {**self.inputs, **self.outputs}.items():
            if not self.context.set_tensor_address(name, buffer.data_ptr()):
                raise TrtpruneError(f"TensorRT rejected the buffer for tensor {name}")
        self.input_name, self.output_name = input_names[0], output_names[0]
        self.input_shape = tuple(self.inputs[self.input_name].shape)
        torch.cuda.synchronize()
        self.stream = torch.cuda.Stream()
        self._timer = CudaGraphTimer(self._enqueue, stream=self.stream)
        self.uses_graph = self._timer.uses_graph

    def _input_shape(self, name: str, requested: tuple[int, ...] | None) -> tuple[int, ...]:
        shape = tuple(self.engine.get_tensor_shape(name))
        requested = tuple(int(d) for d in requested) if requested else None
        if all(d >= 0 for d in shape):
            if requested is not None and requested != shape:
                raise TrtpruneError(f"the engine's input {name} has shape {shape}, not the requested {requested}")
            return shape
        if requested is None or len(requested) != len(shape):
            raise TrtpruneError(f"input {name} has a dynamic shape {shape}; give a static input shape")
        if not self.context.set_input_shape(name, requested):
            raise TrtpruneError(f"the engine's input {name} ({shape}) cannot take shape {requested}")
        return requested

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise TrtpruneError("TensorRT failed to enqueue the engine (see the TensorRT log above)")

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        buf = self.inputs[self.input_name]
        src = torch.from_numpy(x).to(dtype=buf.dtype)
        with torch.cuda.stream(self.stream):
            buf.copy_(src)
        self._timer.run_once()
        self.stream.synchronize()
        return self.outputs[self.output_name].float().cpu().numpy()

    def timed(self, iterations: int) -> float:
        return self._timer.timed(iterations)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        # the context before the engine before the runtime, as TensorRT requires
        self.context = None
        self.engine = None
        self.runtime = None
        self.inputs, self.outputs = {}, {}


def load_plan(
    path: str | os.PathLike[str], config: BackendConfig | None = None, input_shape: tuple[int, ...] | None = None
) -> TrtRunner:
    """A runner for an existing serialized engine (``.plan``)."""
    config = config or BackendConfig(device="cuda")
    BACKEND.check_available(config)
    path = Path(path)
    if not path.is_file():
        raise TrtpruneError(f"engine file not found: {path}")
    return TrtRunner(path.read_bytes(), input_shape, config)


class TrtBackend:
    name = "trt"
    consumes = "onnx"

    def check_available(self, config: BackendConfig) -> None:
        import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise TrtpruneError("TensorRT needs a CUDA GPU and there is none here; use --backend ort")
        if config.device != "cuda":
            raise TrtpruneError("the trt backend runs on the GPU only; use --device cuda")

    def prepare(self, source: Any, input_shape: tuple[int, ...], config: BackendConfig) -> TrtRunner:
        if not isinstance(source, (str, os.PathLike)):
            raise TrtpruneError(f"the trt backend takes an .onnx or .plan path, not {type(source).__name__}")
        self.check_available(config)
        path = Path(source)
        if path.suffix.lower() in PLAN_SUFFIXES:
            return load_plan(path, config, input_shape)
        if path.suffix.lower() != ".onnx":
            raise TrtpruneError(f"{path}: the trt backend takes an .onnx or a .plan file")
        return TrtRunner(build_engine_bytes(path, config, input_shape), input_shape, config)

    def deploy(self, onnx_path: Path, out: Path, config: BackendConfig) -> dict[str, str]:
        """The deployable artefact: the serialized engine, ``model.plan``."""
        self.check_available(config)
        save_plan(build_engine_bytes(onnx_path, config), out / "model.plan")
        return {"engine": "model.plan"}

    def environment(self, config: BackendConfig) -> dict[str, Any]:

        trt = import_tensorrt()
        env: dict[str, Any] = {
            "engine": "tensorrt",
            "version": trt.__version__,
            "device": "cuda",
            "precision": config.precision,
            "tf32": config.precision != "fp32",
            "workspace_mb": config.workspace_mb,
            "opt_level": config.opt_level,
            "processor": cpu_name(),
            "machine": platform.machine(),
        }
        env.update(gpu_environment())
        return env


BACKEND = TrtBackend()
