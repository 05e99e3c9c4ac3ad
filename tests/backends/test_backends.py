"""Backends: every runner computes what the model computes, times positive GPU/CPU milliseconds,
validates its input and describes its environment. GPU and TensorRT tests skip where absent."""

from __future__ import annotations

import logging
import subprocess
import sys
import types

import numpy as np
import pytest

from trtprune.backends import BackendConfig, get_backend
from trtprune.core.errors import TrtpruneError
from trtprune.engine.timing import TimingConfig, measure

SHAPE = (1, 1, 28, 28)
QUICK = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, retries=0)


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference relative to the largest reference magnitude."""
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


@pytest.fixture(scope="module")
def model():
    from trtprune.models import build_model

    return build_model("resnet20", "1x1x28x28")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)


@pytest.fixture(scope="module")
def reference(model, x) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    from trtprune.engine.export import export_onnx

    return export_onnx(model, SHAPE, tmp_path_factory.mktemp("onnx") / "resnet20.onnx")


# --- torch backend, CPU ---------------------------------------------------------------------------


def test_torch_cpu_matches_module_and_times(model, x, reference):
    import torch

    with get_backend("torch").prepare(model, SHAPE, BackendConfig(threads=1)) as runner:
        y = runner.infer(x)
        assert y.shape == reference.shape and y.dtype == np.float32
        assert rel_err(y, reference) <= 1e-5
        assert runner.timed(3) > 0
        timing = measure(runner.timed, QUICK)
        assert timing.median_ms > 0 and timing.samples > 0
    # the caller's module is left as it was: on the CPU, fp32, default memory layout
    weight = next(model.parameters())
    assert weight.device.type == "cpu" and weight.dtype == torch.float32
    assert all(p.is_contiguous() for p in model.parameters())


def test_torch_rejects_wrong_input_shape(model):
    with get_backend("torch").prepare(model, SHAPE, BackendConfig()) as runner:
        with pytest.raises(TrtpruneError, match="does not match"):
            runner.infer(np.zeros((1, 1, 32, 32), np.float32))


def test_torch_rejects_shape_the_model_cannot_run(model):
    with pytest.raises(TrtpruneError, match="cannot run on input shape"):
        get_backend("torch").prepare(model, (1, 3, 28, 28), BackendConfig())


def test_torch_environment():
    import torch

    env = get_backend("torch").environment(BackendConfig(threads=2))
    assert env["engine"] == "torch"
    assert env["version"] == torch.__version__
    assert env["threads"] == 2 and env["device"] == "cpu" and env["processor"]


@pytest.mark.parametrize(
    ("precision", "needle"), [("int8", "int8 needs the trt or ort backend"), ("fp16", "fp16 on cuda only")]
)
def test_torch_rejects_unsupported_precision(model, precision, needle):
    with pytest.raises(TrtpruneError, match=needle):
        get_backend("torch").prepare(model, SHAPE, BackendConfig(precision=precision))


def test_torch_cuda_needs_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrtpruneError, match="no CUDA GPU here; use --device cpu"):
        get_backend("torch").check_available(BackendConfig(device="cuda"))


# --- ONNX Runtime backend -------------------------------------------------------------------------


def test_ort_matches_torch_and_times(onnx_path, x, reference):
    with get_backend("ort").prepare(onnx_path, SHAPE, BackendConfig(threads=1)) as runner:
        assert tuple(runner.input_shape) == SHAPE
        y = runner.infer(x)
        assert y.shape == reference.shape
        assert rel_err(y, reference) <= 1e-4
        assert runner.timed(3) > 0
        assert measure(runner.timed, QUICK).median_ms > 0
        with pytest.raises(TrtpruneError, match="does not match"):
            runner.infer(np.zeros((2, 1, 28, 28), np.float32))


@pytest.mark.parametrize("name", ["ort", "openvino"])
def test_sessions_are_independent_instances_timed_as_one(name, onnx_path, x, reference):
    """``sessions`` prepares the model that many times; the runner computes what one session computes,
    and ``timed(k)`` runs ``k`` inferences on each and returns their mean (so it is never the sum)."""
    from trtprune.backends import Sessions, open_runner

    with open_runner(get_backend(name), onnx_path, SHAPE, BackendConfig(sessions=3)) as runner:
        assert isinstance(runner, Sessions) and len(runner.runners) == 3
        assert len({id(r) for r in runner.runners}) == 3 and tuple(runner.input_shape) == SHAPE
        assert rel_err(runner.infer(x), reference) <= 1e-4
        one = measure(runner.runners[0].timed, QUICK).median_ms
        mean = measure(runner.timed, QUICK).median_ms
        assert 0.4 * one < mean < 2.5 * one  # a mean of three, not their sum (3x)
    with open_runner(get_backend(name), onnx_path, SHAPE, BackendConfig()) as single:
        assert not isinstance(single, Sessions)


def test_backend_config_reads_older_files_as_one_session():
    assert BackendConfig.from_json({"format": 1, "threads": 2}).sessions == 1
    config = BackendConfig(sessions=3)
    assert BackendConfig.from_json(config.to_json()) == config
    with pytest.raises(TrtpruneError, match="sessions must be >= 1"):
        BackendConfig(sessions=0)


def test_ort_environment():
    import onnxruntime

    env = get_backend("ort").environment(BackendConfig(threads=3))
    assert env["engine"] == "onnxruntime" and env["version"] == onnxruntime.__version__ and env["threads"] == 3


def test_ort_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(TrtpruneError, match="cannot load"):
        get_backend("ort").prepare(tmp_path / "missing.onnx", SHAPE, BackendConfig())


# --- OpenVINO backend ------------------------------------------------------------------------------


def test_openvino_matches_ort_and_times(onnx_path, x, reference):
    with get_backend("ort").prepare(onnx_path, SHAPE, BackendConfig(threads=1)) as ort_runner:
        expected = ort_runner.infer(x)
    with get_backend("openvino").prepare(onnx_path, SHAPE, BackendConfig(threads=1)) as runner:
        assert tuple(runner.input_shape) == SHAPE
        y = runner.infer(x)
        assert y.shape == reference.shape and y.dtype == np.float32
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
        assert runner.timed(3) > 0
        assert measure(runner.timed, QUICK).median_ms > 0
        np.testing.assert_allclose(runner.infer(x), y)  # infer leaves the timed request's bound input alone
        with pytest.raises(TrtpruneError, match="does not match"):
            runner.infer(np.zeros((2, 1, 28, 28), np.float32))


def test_openvino_pins_fp32_and_the_thread_count(onnx_path):
    import openvino as ov

    with get_backend("openvino").prepare(onnx_path, SHAPE, BackendConfig(threads=2)) as runner:
        assert runner.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
        assert int(runner.compiled.get_property("INFERENCE_NUM_THREADS")) == 2
        assert str(runner.compiled.get_property("PERFORMANCE_HINT")) == "LATENCY"


def test_openvino_ir_loads_and_matches_ort(onnx_path, x, tmp_path):
    import openvino as ov

    files = get_backend("openvino").deploy(onnx_path, tmp_path, BackendConfig())
    assert files == {"engine": "model.xml"} and (tmp_path / "model.bin").is_file()
    # what a user deploying the IR runs: f32 asked for (the CPU plugin's default may be bf16)
    compiled = ov.Core().compile_model(tmp_path / "model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with get_backend("ort").prepare(onnx_path, SHAPE, BackendConfig()) as ort_runner:
        expected = ort_runner.infer(x)
    np.testing.assert_allclose(compiled(x)[0], expected, rtol=1e-4, atol=1e-4)
    with get_backend("openvino").prepare(tmp_path / "model.xml", SHAPE, BackendConfig()) as runner:  # the IR runs too
        np.testing.assert_allclose(runner.infer(x), expected, rtol=1e-4, atol=1e-4)
    weights = [op for op in ov.Core().read_model(tmp_path / "model.xml").get_ops() if op.get_type_name() == "Constant"]
    assert weights and all(op.get_element_type() != ov.Type.f16 for op in weights)  # fp32 weights, not compressed


def test_openvino_environment():
    import openvino as ov

    env = get_backend("openvino").environment(BackendConfig(threads=3))
    assert env["engine"] == "openvino" and env["version"] == ov.get_version()
    assert env["threads"] == 3 and env["processor"] and env["precision"] == "fp32"


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (BackendConfig(precision="fp16"), "runs fp32 only"),
        (BackendConfig(precision="int8"), "runs fp32 only"),
        (BackendConfig(device="cuda"), "use --device cpu"),
    ],
)
def test_openvino_rejects_what_it_does_not_run(onnx_path, config, needle):
    from trtprune.core.errors import UsageError

    with pytest.raises(UsageError, match=needle) as info:
        get_backend("openvino").prepare(onnx_path, SHAPE, config)
    assert "\n" not in str(info.value)


def test_openvino_check_available_names_the_install_command(monkeypatch):
    from trtprune.core.errors import UsageError

    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    with pytest.raises(UsageError) as info:
        get_backend("openvino").check_available(BackendConfig())
    assert "pip install openvino" in str(info.value) and "\n" not in str(info.value)


def test_openvino_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(TrtpruneError, match="OpenVINO cannot load"):
        get_backend("openvino").prepare(tmp_path / "missing.onnx", SHAPE, BackendConfig())


def test_backend_modules_import_without_openvino():
    code = (
        "import sys\n"
        "import trtprune.backends.openvino, trtprune.cli, trtprune.lut.build, trtprune.engine.candidates\n"
        "from trtprune.backends import get_backend\n"
        "get_backend('openvino')\n"
        "assert 'openvino' not in sys.modules, 'openvino imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- GPU helpers and the TensorRT backend without TensorRT ------------------------------------------


def test_gpu_environment_never_fails():
    from trtprune.backends.gpu import gpu_environment

    env = gpu_environment()
    assert isinstance(env, dict) and "driver" in env


def test_trt_check_available_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    with pytest.raises(TrtpruneError) as info:
        get_backend("trt").check_available(BackendConfig(device="cuda"))
    assert "pip install 'trtprune[trt]'" in str(info.value)
    assert "\n" not in str(info.value)


def test_trt_stub_package_counts_as_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # PyPI's placeholder: no API
    with pytest.raises(TrtpruneError, match=r"pip install 'trtprune\[trt\]'"):
        get_backend("trt").prepare("model.onnx", SHAPE, BackendConfig(device="cuda"))


def test_backend_modules_import_without_tensorrt_or_torch():
    code = (
        "import sys\n"
        "import trtprune.backends.trt, trtprune.backends.gpu, trtprune.backends.torch_backend\n"
        "loaded = [m for m in ('tensorrt', 'torch') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_onnx_precision_reads_the_graph(model, onnx_path, tmp_path):
    from trtprune.backends.trt import onnx_precision
    from trtprune.engine.precision import export_with_precision

    assert onnx_precision(onnx_path) == "fp32"
    assert onnx_precision(export_with_precision(model, SHAPE, tmp_path / "half.onnx", "fp16")) == "fp16"


# --- CUDA (skipped without a GPU) -------------------------------------------------------------------


@pytest.mark.gpu
def test_torch_cuda_matches_cpu(model, x):
    cpu = get_backend("torch").prepare(model, SHAPE, BackendConfig())
    expected = cpu.infer(x)
    cpu.close()
    with get_backend("torch").prepare(model, SHAPE, BackendConfig(device="cuda")) as runner:
        assert runner.uses_graph
        assert rel_err(runner.infer(x), expected) <= 1e-4
        assert runner.timed(10) > 0
        assert measure(runner.timed, QUICK).median_ms > 0
    with get_backend("torch").prepare(model, SHAPE, BackendConfig(device="cuda", precision="fp16")) as runner:
        assert rel_err(runner.infer(x), expected) <= 2e-2
    env = get_backend("torch").environment(BackendConfig(device="cuda"))
    assert env["gpu"] and env["compute_capability"] and env["cuda"]


# --- TensorRT (skipped without TensorRT and a GPU) ---------------------------------------------------


@pytest.mark.trt
def test_trt_matches_ort(onnx_path, x, tmp_path):
    with get_backend("ort").prepare(onnx_path, SHAPE, BackendConfig()) as ort_runner:
        expected = ort_runner.infer(x)
    config = BackendConfig(device="cuda", timing_cache=str(tmp_path / "timing.cache"))
    with get_backend("trt").prepare(onnx_path, SHAPE, config) as runner:
        assert tuple(runner.input_shape) == SHAPE
        y = runner.infer(x)
        assert y.shape == expected.shape and y.dtype == np.float32
        assert rel_err(y, expected) <= 1e-3
        assert runner.uses_graph
        assert runner.timed(10) > 0
        assert measure(runner.timed, QUICK).median_ms > 0
        with pytest.raises(TrtpruneError, match="does not match"):
            runner.infer(np.zeros((1, 1, 32, 32), np.float32))
    env = get_backend("trt").environment(config)
    assert env["engine"] == "tensorrt" and env["version"] and env["gpu"] and env["opt_level"] == 3


@pytest.mark.trt
def test_trt_fp16_from_the_onnx(model, x, tmp_path):
    from trtprune.engine.precision import export_with_precision

    path = export_with_precision(model, SHAPE, tmp_path / "half.onnx", "fp16")
    with get_backend("ort").prepare(path, SHAPE, BackendConfig()) as ort_runner:
        expected = ort_runner.infer(x).astype(np.float32)
    with get_backend("trt").prepare(path, SHAPE, BackendConfig(device="cuda", precision="fp16")) as runner:
        assert rel_err(runner.infer(x), expected) <= 2e-2


@pytest.mark.trt
def test_trt_rejects_precision_the_onnx_does_not_carry(onnx_path):
    from trtprune.backends.trt import build_engine_bytes

    with pytest.raises(TrtpruneError, match="is a fp32 ONNX but precision fp16"):
        build_engine_bytes(onnx_path, BackendConfig(device="cuda", precision="fp16"))


@pytest.mark.trt
def test_trt_timing_cache_written_and_reused(onnx_path, tmp_path, caplog):
    from trtprune.backends.trt import build_engine_bytes

    cache = tmp_path / "cache" / "timing.cache"
    config = BackendConfig(device="cuda", timing_cache=str(cache))
    assert build_engine_bytes(onnx_path, config)
    assert cache.is_file() and cache.stat().st_size > 0
    size = cache.stat().st_size
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trtprune.backends.trt"):
        assert build_engine_bytes(onnx_path, config)
    assert f"loaded timing cache {cache} ({size} bytes)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert cache.stat().st_size >= size


@pytest.mark.trt
def test_trt_plan_round_trip(onnx_path, x, tmp_path):
    from trtprune.backends.trt import build_engine_bytes, load_plan, save_plan

    config = BackendConfig(device="cuda")
    plan = build_engine_bytes(onnx_path, config)
    path = save_plan(plan, tmp_path / "run" / "model.plan")
    assert path.read_bytes() == plan
    with get_backend("trt").prepare(onnx_path, SHAPE, config) as built, load_plan(path) as loaded:
        assert tuple(loaded.input_shape) == SHAPE
        assert rel_err(loaded.infer(x), built.infer(x)) <= 1e-3
    with get_backend("trt").prepare(path, SHAPE, config) as runner:
        assert runner.infer(x).shape == (1, 10)
