"""Shared fixtures; hardware markers skip where the hardware is absent."""

from __future__ import annotations

import functools
import importlib.util

import pytest


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    has_trt = importlib.util.find_spec("tensorrt") is not None
    has_gpu = _has_cuda()
    for item in items:
        if "trt" in item.keywords and not (has_trt and has_gpu):
            item.add_marker(pytest.mark.skip(reason="TensorRT and a CUDA GPU are needed (pip install 'trtprune[trt]')"))
        elif "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="no CUDA GPU on this machine"))


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from trtprune.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def reachable_ratio():
    """``(table, checkpoint=None, at=0.4, least=0) -> ratio``: a budget ratio ``at`` of the way from the smallest latency
    the table predicts to its base, so a prune test's budget is feasible whatever this machine measured
    (a small table's floor differs between machines and runs: 0.64 of the base on CI's, above 0.7 at times)."""
    from trtprune.decide.decision import smallest_ms
    from trtprune.prune.config import PruneConfig
    from trtprune.prune.inputs import load_inputs

    @functools.cache  # the tables are read-only here: one load per table, not one per parametrized test
    def ratio(table, checkpoint=None, at: float = 0.4, least: float = 0.0) -> float:
        ckpt = None if checkpoint is None else str(checkpoint)
        inputs = load_inputs(PruneConfig(lut=str(table), checkpoint=ckpt, budget_ratio=0.999))
        floor = smallest_ms(inputs.groups, inputs.latency, inputs.round_to) / inputs.latency.base_ms
        assert floor < 0.95, f"the table predicts almost no saving (floor {floor:.3f} of the base)"
        return max(least, round(floor + at * (1 - floor), 3))  # ``least``: a test's own budget, where reachable

    return ratio


@pytest.fixture(scope="session")
def r20_table(tmp_path_factory):
    """(checkpoint, table): an untrained resnet20 for Fashion-MNIST and a small table measured for it,
    shared by the modules that prune (read-only: each writes its runs under its own folder)."""
    from trtprune.engine.timing import TimingConfig
    from trtprune.lut.build import LutConfig, build_lut
    from trtprune.models import build_model
    from trtprune.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("r20-table")
    ckpt = root / "base.pt"
    model = build_model("resnet20", "1x1x28x28")
    save_checkpoint(ckpt, model, model_name="resnet20", input_shape=(1, 1, 28, 28), num_classes=10, preprocessing=None)
    fast = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, warmup_ms=50, retries=0)
    table = root / "lut.db"
    build_lut(LutConfig(model=None, checkpoint=str(ckpt), step=16, small=4, refine=False, timing=fast), table)
    return ckpt, table


@pytest.fixture(scope="session")
def canvas_config():
    """The tiny canvas set the detection tests read."""
    from trtprune.data.canvas import CanvasConfig

    return CanvasConfig(train=3, val=4, size=96, seed=0)


@pytest.fixture(scope="session")
def canvas(tmp_path_factory, canvas_config):
    """That canvas set, written (COCO format)."""
    from trtprune.data.canvas import write_canvas_set

    root = tmp_path_factory.mktemp("canvas")
    write_canvas_set(root, canvas_config)
    return root


@pytest.fixture(scope="session")
def ssdlite_table(tmp_path_factory, canvas):
    """(checkpoint, table): an untrained SSDlite for the canvas set's 10 classes and a small block table."""
    from trtprune.engine.timing import TimingConfig
    from trtprune.lut.build import LutConfig, build_lut
    from trtprune.models import build_model
    from trtprune.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("ssdlite-table")
    name, shape = "ssdlite320_mobilenet_v3_large", (1, 3, 96, 96)
    ckpt = root / "base.pt"
    model = build_model(name, shape, num_classes=11)
    save_checkpoint(ckpt, model, model_name=name, input_shape=shape, num_classes=11, preprocessing=None)
    fast = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, warmup_ms=50, retries=0)
    table = root / "lut.db"
    build_lut(
        LutConfig(model=None, checkpoint=str(ckpt), mode="block", step=64, small=1, refine=False, timing=fast), table
    )
    return ckpt, table
