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
