"""Plan JSON round trips and validation errors that name the group."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trtprune.core.errors import PlanError
from trtprune.graph.groups import find_groups
from trtprune.models import build_model
from trtprune.surgery.plan import Plan, random_plan

SHAPE = (1, 1, 28, 28)


@pytest.fixture(scope="module")
def groups():
    return find_groups(build_model("resnet20", SHAPE), SHAPE)


def test_round_trip(tmp_path, groups):
    plan = random_plan(groups, "resnet20", np.random.default_rng(0))
    plan.save(tmp_path / "p.json")
    again = Plan.load(tmp_path / "p.json")
    assert again.to_json() == plan.to_json()
    assert json.loads((tmp_path / "p.json").read_text())["format"] == 1


@pytest.mark.parametrize(
    ("groups_json", "message"),
    [
        ({"conv1": []}, "'conv1' keeps no channel"),
        ({"conv1": [0, 16]}, "'conv1': channel index 16 is out of range"),
        ({"conv1": [3, 1]}, "'conv1': kept indices must be ascending"),
        ({"nope": [0]}, "unknown group 'nope'"),
    ],
)
def test_validation_names_the_group(groups, groups_json, message):
    plan = Plan("resnet20", SHAPE, groups_json)
    with pytest.raises(PlanError, match=message):
        plan.validate(groups, "resnet20")


def test_plan_for_another_model(groups):
    with pytest.raises(PlanError, match="plan is for model 'resnet50', not 'resnet20'"):
        Plan("resnet50", SHAPE, {}).validate(groups, "resnet20")


def test_malformed_plan_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(PlanError, match="not a trtprune plan"):
        Plan.load(tmp_path / "other.json")


def test_grouped_conv_needs_the_same_positions_in_every_block():
    shape = (1, 3, 64, 64)
    groups = find_groups(build_model("resnext50_32x4d", shape), shape)
    with pytest.raises(PlanError, match="grouped conv with 32 groups"):
        Plan("resnext50_32x4d", shape, {"layer1.0.conv2": [0, 1, 2]}).validate(groups, "resnext50_32x4d")
    ok = Plan("resnext50_32x4d", shape, {"layer1.0.conv2": [p * 4 + 1 for p in range(32)]})
    ok.validate(groups, "resnext50_32x4d")
