"""``--weights NAME``: torchvision's named weights from the torch hub cache, or one line naming the file."""

from __future__ import annotations

import pytest
import torch

from trtprune.models.loading import load_model


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache and no way to download (a proxy that refuses)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_weights_in_the_cache_are_loaded(offline_hub):
    import torchvision

    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    reference = torchvision.models.resnet18(num_classes=1000).state_dict()
    offline_hub.mkdir(parents=True)
    torch.save(reference, offline_hub / weights.url.rsplit("/", 1)[1])
    loaded = load_model("resnet18", "1x3x64x64", weights="IMAGENET1K_V1").model.state_dict()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


def test_weights_missing_everywhere_name_the_file(offline_hub, run_cli):
    code, _, err = run_cli("groups", "resnet18", "--input", "1x3x64x64", "--weights", "DEFAULT")
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err
    assert str(offline_hub) in err and "resnet18-" in err and "TORCH_HOME" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["resnet18", "--weights", "COCO_V1"], "use one of IMAGENET1K_V1"),
        (["resnet20", "--weights", "DEFAULT"], "no torchvision weights"),
    ],
)
def test_bad_weights_are_one_line(offline_hub, run_cli, args, needle):
    code, _, err = run_cli("groups", *args)
    assert code == 2 and err.strip().count("\n") == 0 and needle in err, err
