"""Pruning and export across torchvision's and timm's CNN families, and clear errors where unsupported.

Each model is pruned at one random plan and checked end to end (:func:`trtprune.coverage.check_model`):
the ONNX Runtime output equals the pruned torch model, the pruned model equals the unpruned one with
the removed channels zeroed (where no norm spans the channels), the parameter count is the plan's
and no layer is left without channels.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from model_coverage import TIMM_SWEEP, check_model

from trtprune.core.errors import UnsupportedModelError
from trtprune.engine.export import export_onnx, ort_session
from trtprune.graph.groups import find_groups
from trtprune.models import build_model, list_models
from trtprune.surgery.apply import apply_masks, apply_plan
from trtprune.surgery.plan import random_plan

TORCHVISION = [s.name for s in list_models() if s.family == "torchvision"]
# what each exercises: concat (densenet, googlenet, squeezenet), grouped convs (resnext, regnet),
# depthwise + squeeze-excitation (mobilenet_v3, efficientnet, regnet_y), channel shuffle (shufflenet)
FAST = ["squeezenet1_1", "mobilenet_v3_small", "mnasnet0_5", "regnet_x_400mf", "googlenet", "shufflenet_v2_x0_5"]
# timm models no plan can prune, with the reason they give
REFUSED = {"nf_resnet26": "weight|reshape|another axis|functional"}


def _assert_ok(name: str) -> None:
    row = check_model(name)
    if name in REFUSED:
        assert row.status == "refused" and "\n" not in row.reason
        return
    assert row.status == "ok", row.reason
    assert row.params_pruned == row.params_expected < row.params
    assert not row.empty_layers
    assert row.ort_error is not None and row.ort_error <= 1e-4
    assert row.oracle_error is None or row.oracle_error <= 1e-4, f"pruned != zero-masked: {row.oracle_error}"


@pytest.mark.parametrize("name", FAST)
def test_prune_and_export(name):
    _assert_ok(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in TORCHVISION if n not in FAST])
def test_every_torchvision_cnn_prunes_and_exports(name):
    _assert_ok(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TIMM_SWEEP))
def test_timm_cnns_prune_and_export(name):
    _assert_ok(name)


def test_the_timm_sweep_is_broad():
    assert len(TIMM_SWEEP) >= 25
    assert len({family.split(" ")[0] for family in TIMM_SWEEP.values()}) >= 25


@pytest.mark.parametrize(
    "name", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]
)
def test_shufflenet_export_equals_the_soft_masked_model(name, tmp_path):
    """The channel shuffle ties channels across branches; with the tie modelled, the physically
    pruned and exported network computes what the soft-masked one does."""
    shape = (1, 3, 64, 64)
    model = build_model(name, shape, num_classes=10)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    soft = copy.deepcopy(model)
    groups = find_groups(model, shape)
    plan = random_plan(groups, name, np.random.default_rng(3), min_ratio=0.2)
    # the stage groups that cross the shuffle are pruned too, not only the branch-internal ones
    crossing = [n for n in plan.groups if len(groups.by_name[n].producers) > 2]
    assert crossing, "the plan cuts a group that passes a channel shuffle"
    apply_masks(find_groups(soft, shape), plan, name)
    apply_plan(groups, plan, name)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y_soft = soft(x).numpy()
    y_ort = ort_session(export_onnx(model, shape, tmp_path / f"{name}.onnx")).run(None, {"input": x.numpy()})[0]
    assert np.abs(y_ort - y_soft).max() <= 1e-4 * np.abs(y_soft).max()


def test_unsupported_groups_are_left_whole_with_the_reason():
    """SKNet's attention softmaxes over its two paths' channels: those groups stay whole, the rest prune."""
    shape = (1, 3, 64, 64)
    groups = find_groups(build_model("skresnet18", shape), shape)
    assert groups.groups and groups.pinned
    for p in groups.pinned:
        assert p.reason and "\n" not in p.reason
    assert any("attn" in p.name for p in groups.pinned)
    assert not any("attn.fc_select" in g.name for g in groups.groups)


def test_a_model_nothing_can_prune_is_refused_in_one_line():
    row = check_model("nf_resnet26")
    assert row.status == "refused" and row.reason.count("\n") == 0 and "can be pruned" in row.reason


def test_failed_export_leaves_no_file(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eig(x[0, 0])[0].real  # not exportable to ONNX

    with pytest.raises(UnsupportedModelError, match="cannot export"):
        export_onnx(Broken(), (1, 1, 4, 4), tmp_path / "b.onnx")
    assert list(tmp_path.iterdir()) == []
