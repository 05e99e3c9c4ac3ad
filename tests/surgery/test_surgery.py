"""Hard pruning, soft masks, parameter counts and ONNX export agree for random plans."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from trtprune.engine.export import export_onnx, ort_session
from trtprune.graph.groups import find_groups
from trtprune.models import build_model
from trtprune.surgery.apply import apply_masks, apply_plan, expected_param_count
from trtprune.surgery.plan import random_plan

MODELS = {
    "resnet18": (1, 3, 64, 64),
    "resnet50": (1, 3, 64, 64),
    "mobilenet_v2": (1, 3, 64, 64),
    "resnet20": (1, 1, 28, 28),
    "efficientnet_lite0": (1, 3, 96, 96),
}


def _randomize_norms(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics so that a wrongly masked channel would show."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("name", list(MODELS))
def test_hard_soft_onnx_and_param_count_agree(name, tmp_path):
    shape = MODELS[name]
    model = build_model(name, shape)
    _randomize_norms(model)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    for seed in range(2):
        hard = copy.deepcopy(model)
        groups = find_groups(hard, shape)
        plan = random_plan(groups, name, np.random.default_rng(seed))
        assert plan.groups, "the random plan prunes something"
        expected = expected_param_count(groups, plan)
        soft = copy.deepcopy(model)
        apply_masks(find_groups(soft, shape), plan, name)
        apply_plan(groups, plan, name)
        assert sum(p.numel() for p in hard.parameters()) == expected
        assert expected < sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            y_hard, y_soft = hard(x).numpy(), soft(x).numpy()
        assert _rel(y_hard, y_soft) <= 1e-5
        path = export_onnx(hard, shape, tmp_path / f"{name}-{seed}.onnx")
        y_ort = ort_session(path).run(None, {"input": x.numpy()})[0]
        assert _rel(y_ort, y_hard) <= 1e-4


def test_soft_masks_stay_zero_through_training():
    shape = (4, 1, 28, 28)
    model = build_model("resnet20", shape)
    groups = find_groups(model, shape)
    plan = random_plan(groups, "resnet20", np.random.default_rng(0))
    mask = apply_masks(groups, plan, "resnet20")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(*shape)).sum().backward()
        opt.step()
    dropped = sorted(set(range(16)) - set(plan.groups.get("conv1", range(16))))
    assert dropped, "plan prunes conv1's group"
    assert float(model.conv1.weight.detach()[dropped].abs().sum()) == 0.0
    assert float(model.bn1.weight.detach()[dropped].abs().sum()) == 0.0
    mask.remove()


def test_keep_ratio_keeps_round_ratio_of_every_group():
    from trtprune.surgery.plan import keep_ratio_plan

    shape = (1, 3, 64, 64)
    groups = find_groups(build_model("resnet18", shape), shape)
    plan = keep_ratio_plan(groups, 0.3, "resnet18")
    for g in groups.groups:
        assert len(plan.groups[g.name]) == max(1, round(0.3 * g.channels))
    # highest-L2 first: every kept channel's norm >= every dropped channel's norm
    from trtprune.graph.norms import channel_sq_norms

    g = groups.groups[1]
    norms = channel_sq_norms(groups, g, "out")
    kept = plan.groups[g.name]
    dropped = sorted(set(range(g.channels)) - set(kept))
    assert norms[kept].min() >= norms[dropped].max()
