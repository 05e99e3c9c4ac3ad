"""No plan leaves a layer without channels: plans are built and validated per group member."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from model_coverage import empty_layers

from trtprune.core.errors import PlanError
from trtprune.graph.groups import Member, find_groups
from trtprune.models import build_model
from trtprune.surgery.apply import apply_plan, expected_param_count
from trtprune.surgery.plan import Plan, keep_ratio_plan, width_plan

SHAPE = (1, 3, 64, 64)
# splits (CSP, Res2Net), residual ties (GhostNet), grouped convs (ResNeXt), shuffle + chunk (ShuffleNet)
MODELS = ["cspresnet50", "ghostnet_100", "res2net50_26w_4s", "resnext50_32x4d", "shufflenet_v2_x0_5"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("keep_ratio", [0.01, 0.4])
def test_the_smallest_plans_leave_every_layer_a_channel(name, keep_ratio):
    model = build_model(name, SHAPE, num_classes=10)
    groups = find_groups(model, SHAPE)
    plan = keep_ratio_plan(groups, keep_ratio, name)
    expected = expected_param_count(groups, plan)
    apply_plan(groups, plan, name)
    assert not empty_layers(model)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_width_one_everywhere_keeps_one_block_per_grouped_conv():
    model = build_model("resnext50_32x4d", SHAPE, num_classes=10)
    groups = find_groups(model, SHAPE)
    plan = width_plan(groups, {g.name: 1 for g in groups.groups}, "resnext50_32x4d")
    assert all(len(plan.groups[g.name]) == g.partitions for g in groups.groups if g.channels > 1)
    apply_plan(groups, plan, "resnext50_32x4d")
    assert not empty_layers(model)


def test_a_plan_that_would_empty_a_layer_is_rejected_with_the_group_named():
    groups = find_groups(build_model("resnet20", (1, 1, 28, 28)), (1, 1, 28, 28))
    g = groups.groups[1]
    # a layer that sees only channel 0 of the group (as one side of a split would)
    side = Member("layer1.0.conv2", "in", "Conv2d", (0,), (0,))
    groups.by_name[g.name] = replace(g, members=(*g.members, side))
    plan = Plan("resnet20", (1, 1, 28, 28), {g.name: list(range(1, g.channels))})
    with pytest.raises(PlanError, match=rf"{g.name}.*layer1.0.conv2.*at least one"):
        plan.validate(groups, "resnet20")
    plan.groups[g.name] = [0]
    plan.validate(groups, "resnet20")


def test_an_empty_group_is_rejected():
    groups = find_groups(build_model("resnet20", (1, 1, 28, 28)), (1, 1, 28, 28))
    with pytest.raises(PlanError, match="keeps no channel"):
        Plan("resnet20", (1, 1, 28, 28), {groups.groups[0].name: []}).validate(groups, "resnet20")


def test_random_plans_never_empty_a_layer():
    from trtprune.surgery.plan import random_plan

    for name in ["ghostnet_100", "cspresnet50"]:
        model = build_model(name, SHAPE, num_classes=10)
        groups = find_groups(model, SHAPE)
        plan = random_plan(groups, name, np.random.default_rng(5), min_ratio=0.0)
        apply_plan(groups, plan, name)
        assert not empty_layers(model)
