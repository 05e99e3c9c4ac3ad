"""timm's CNNs in the model registry: listed, built by name with random weights, clear errors otherwise."""

from __future__ import annotations

import json

import pytest
import torch

from trtprune.core.errors import UsageError
from trtprune.models import build_model, get_model_spec, list_models


def test_timm_cnns_are_listed_and_transformers_are_not():
    names = {s.name for s in list_models() if s.family == "timm"}
    assert len(names) > 300
    assert {"resnet50d", "ghostnet_100", "cspresnet50", "convnext_atto", "timm_resnet50"} <= names
    assert not any(n.startswith(("vit_", "swin", "deit", "beit")) for n in names)
    assert get_model_spec("resnet50").family == "torchvision"  # a shared name stays torchvision's


def test_a_timm_model_builds_by_name_with_its_input_channels():
    model = build_model("lcnet_050", (1, 1, 32, 32), num_classes=7)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 7)
    again = build_model("lcnet_050", (1, 1, 32, 32), num_classes=7)
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # random init, reproducible: no weights downloaded


def test_timm_preprocessing_and_input_come_from_its_config():
    spec = get_model_spec("inception_v4")
    assert spec.default_input == (1, 3, 299, 299)
    assert spec.preprocessing["mean"] == pytest.approx([0.5, 0.5, 0.5])


def test_an_unknown_name_suggests_close_ones():
    with pytest.raises(UsageError, match="did you mean.*resnet50d"):
        get_model_spec("resnt50d")


def test_a_vision_transformer_gets_one_line_on_what_trtprune_prunes(run_cli):
    code, _, err = run_cli("groups", "vit_base_patch16_224")
    assert code == 2
    assert err.count("\n") == 1 and "not a convolutional network" in err and "Traceback" not in err


def test_cli_lists_one_family(run_cli):
    code, out, _ = run_cli("models", "--family", "timm", "--json")
    rows = json.loads(out)
    assert code == 0 and rows and {r["family"] for r in rows} == {"timm"}
    code, _, err = run_cli("models", "--family", "nope")
    assert code == 2 and "choose one of" in err


def test_cli_groups_names_the_groups_left_whole(run_cli):
    code, out, _ = run_cli("groups", "skresnet18", "--input", "1x3x64x64")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("left whole: ")]
    assert lines and all("attn" in line and "channel axis" in line for line in lines)
