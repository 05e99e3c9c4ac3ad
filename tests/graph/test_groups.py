"""Channel groups from the dependency graph."""

from __future__ import annotations

import json

import pytest

from trtprune.graph.groups import find_groups
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


# every member sees every channel of its group; no layer channel is in two groups --------------------
STRUCTURES = {
    "cspresnet50": "a split feeding a block and its residual add",
    "res2net50_26w_4s": "chunks added to the previous scale",
    "rexnet_100": "a slice-add over part of the channels",
    "ghostnet_100": "a residual onto a cheap depthwise copy",
    "mixnet_s": "a split into kernels of several sizes",
    "dpn68": "dual paths: slices and a growing concat",
    "shufflenet_v2_x0_5": "a channel shuffle and chunk",
    "densenet121": "concats",
}


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_every_member_sees_every_group_channel(name):
    found = _groups(name, (1, 3, 64, 64))
    owner: dict[tuple[str, str, int], str] = {}
    for g in found.groups:
        assert g.channels >= 1
        for m in g.members:
            assert set(m.root_idxs) == set(range(g.channels)), f"{m.layer} misses channels of {g.name}"
            for i in m.idxs:
                key = (m.layer, m.role, i)
                assert key not in owner, f"{key} is in {owner.get(key)} and {g.name}"
                owner[key] = g.name


def test_a_runtime_split_ties_its_halves():
    """CSP splits conv_exp's output with split(expand_chs // 2): both halves must keep the same
    positions, so conv_exp's 256 channels are 128 group channels, each reaching both sides."""
    found = _groups("cspresnet50", (1, 3, 64, 64))
    g = found.by_name["stages.0.conv_exp.conv"]
    assert g.channels == 128
    conv = next(m for m in g.members if m.layer == "stages.0.conv_exp.conv")
    assert conv.idxs == tuple(range(256)) and sorted(conv.root_idxs) == sorted(list(range(128)) * 2)
    sides = {m.layer for m in g.members if m.role == "in"}
    assert {"stages.0.conv_transition.conv", "stages.0.blocks.0.conv1.conv"} <= sides


def test_ghostnet_residual_ties_root_channels():
    """blocks.0 adds its input to [primary, cheap(primary)]: input channels c and c + 8 are one channel."""
    found = _groups("ghostnet_100", (1, 3, 64, 64))
    stem = next(g for g in found.groups if "conv_stem" in g.producers)
    assert stem.channels == 8
    conv = next(m for m in stem.members if m.layer == "conv_stem")
    assert len(conv.idxs) == 16 and sorted(conv.root_idxs) == sorted(list(range(8)) * 2)


def test_unknown_ops_leave_their_groups_whole():
    found = _groups("ecaresnet26t", (1, 3, 64, 64))
    assert found.groups  # the bottleneck-internal groups still prune
    assert found.pinned and all("se.conv" in p.reason for p in found.pinned)  # ECA's conv1d runs over channels
