"""Channel groups from the dependency graph."""

from __future__ import annotations

import json

import pytest

from trtprune.groups import find_groups
from trtprune.models import build_model


def _groups(name: str, shape: tuple[int, ...]):
    return find_groups(build_model(name, shape), shape)


def test_resnet50_has_37_groups_and_residual_stages_are_one_group():
    found = _groups("resnet50", (1, 3, 64, 64))
    assert len(found.groups) == 37
    stage1 = found.by_name["layer1.0.downsample.0"]
    # the downsample and the three conv3 of stage 1 are tied by the residual adds
    assert {"layer1.0.conv3", "layer1.1.conv3", "layer1.2.conv3", "layer1.0.downsample.0"} <= set(stage1.producers)
    assert stage1.channels == 256
    assert "fc" not in {g.name for g in found.groups}
    assert all("fc" not in g.producers for g in found.groups)


def test_group_names_are_stable_across_builds():
    a = [g.to_json() for g in _groups("resnet20", (1, 1, 28, 28)).groups]
    b = [g.to_json() for g in _groups("resnet20", (1, 1, 28, 28)).groups]
    assert a == b
    assert len(a) == 12  # stem/stage1 + 9 block-internal + stage 2 and 3 residual groups


def test_depthwise_follows_its_producer():
    found = _groups("mobilenet_v2", (1, 3, 64, 64))
    group = next(g for g in found.groups if "features.2.conv.1.0" in g.layers)
    assert "features.2.conv.0.0" in group.producers  # the 1x1 expansion feeding the depthwise conv
    assert "features.2.conv.2" in group.consumers


def test_grouped_conv_groups_record_blocks():
    found = _groups("resnext50_32x4d", (1, 3, 64, 64))
    assert found.by_name["layer1.0.conv2"].partitions == 32


def test_cli_groups_json(run_cli):
    code, out, _ = run_cli("groups", "resnet50", "--input", "1x3x64x64", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 37
    assert all({"name", "channels", "layers"} <= set(r) for r in rows)


@pytest.mark.parametrize("shape", ["1x1x28x28", "1x3x32x32"])
def test_input_shape_sets_in_channels(shape):
    model = build_model("resnet20", shape)
    assert model.conv1.in_channels == int(shape.split("x")[1])
