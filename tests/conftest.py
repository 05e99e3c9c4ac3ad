"""Shared fixtures; hardware markers skip where the hardware is absent."""

from __future__ import annotations

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
