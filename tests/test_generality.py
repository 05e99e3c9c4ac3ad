"""Pruning and export across torchvision's CNN families, and clear errors where unsupported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trtprune.errors import UnsupportedModelError
from trtprune.export import export_onnx, ort_session
from trtprune.groups import find_groups
from trtprune.models import build_model
from trtprune.plan import random_plan
from trtprune.surgery import apply_plan

# What each exercises: concat (densenet, googlenet, squeezenet), grouped convs (resnext, regnet),
# depthwise + squeeze-excitation (mobilenet_v3, efficientnet, regnet_y), layer norms (convnext),
# plain stacks (vgg).
FAST = ["squeezenet1_1", "mobilenet_v3_small", "mnasnet0_5", "regnet_x_400mf", "googlenet", "vgg11_bn"]
SLOW = ["densenet121", "resnext50_32x4d", "regnet_y_400mf", "efficientnet_b0", "convnext_tiny", "inception_v3"]


def _check(name: str, tmp_path) -> None:
    shape = (1, 3, 299, 299) if name == "inception_v3" else (1, 3, 224, 224) if name == "vgg11_bn" else (1, 3, 96, 96)
    model = build_model(name, shape, num_classes=10)
    groups = find_groups(model, shape)
    before = sum(p.numel() for p in model.parameters())
    plan = random_plan(groups, name, np.random.default_rng(0), min_ratio=0.3)
    apply_plan(groups, plan, name)
    assert sum(p.numel() for p in model.parameters()) < before
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).numpy()
    assert y.shape == (1, 10)
    y_ort = ort_session(export_onnx(model, shape, tmp_path / f"{name}.onnx")).run(None, {"input": x.numpy()})[0]
    assert np.abs(y_ort - y).max() <= 1e-4 * max(np.abs(y).max(), 1e-3)


@pytest.mark.parametrize("name", FAST)
def test_prune_and_export(name, tmp_path):
    _check(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_prune_and_export_slow(name, tmp_path):
    _check(name, tmp_path)


def test_channel_shuffle_is_refused_with_the_reason():
    shape = (1, 3, 64, 64)
    with pytest.raises(UnsupportedModelError, match="reshape.*channel shuffle"):
        find_groups(build_model("shufflenet_v2_x0_5", shape), shape)


def test_failed_export_leaves_no_file(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eig(x[0, 0])[0].real  # not exportable to ONNX

    with pytest.raises(UnsupportedModelError, match="cannot export"):
        export_onnx(Broken(), (1, 1, 4, 4), tmp_path / "b.onnx")
    assert list(tmp_path.iterdir()) == []
