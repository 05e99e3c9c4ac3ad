"""Detectors: the canvas set, COCO data, mAP, the detection zoo, groups and whole-detector export."""

from __future__ import annotations

import json

import pytest
import torch

from trtprune.core.errors import UsageError
from trtprune.data import get_dataset
from trtprune.data.canvas import CanvasConfig, write_canvas_set
from trtprune.data.coco import detection_collate

SMALL = CanvasConfig(train=3, val=4, size=96, seed=0)


@pytest.fixture(scope="module")
def canvas(tmp_path_factory):
    root = tmp_path_factory.mktemp("canvas")
    write_canvas_set(root, SMALL)
    return root


def test_canvas_round_trip(canvas):
    ann = json.loads((canvas / "annotations" / "instances_val.json").read_text())
    ds = get_dataset("coco", "test", canvas, input_size=(3, 96, 96))
    assert len(ds) == SMALL.val == len(ann["images"])
    for i in range(len(ds)):
        x, target = ds[i]
        info = ann["images"][i]
        assert x.shape == (3, info["height"], info["width"]) and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0
        rows = [a for a in ann["annotations"] if a["image_id"] == info["id"]]
        want = torch.tensor(
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in rows]
        )
        assert torch.equal(target["boxes"], want.float())
        assert target["labels"].tolist() == [a["category_id"] for a in rows]
        assert target["labels"].dtype == torch.int64 and int(target["labels"].min()) >= 1
    assert ds.num_classes == 11


def test_resized_input_scales_boxes(canvas):
    full = get_dataset("coco", "test", canvas, input_size=(3, 96, 96))
    half = get_dataset("coco", "test", canvas, input_size=(3, 48, 48))
    x, target = half[0]
    assert x.shape == (3, 48, 48) and target["orig_size"] == (96, 96)
    assert torch.allclose(target["boxes"] * 2, full[0][1]["boxes"])


def test_canvas_set_is_deterministic(canvas, tmp_path):
    write_canvas_set(tmp_path, SMALL)
    for rel in ("annotations/instances_train.json", "annotations/instances_val.json", "val/000003.png"):
        assert (tmp_path / rel).read_bytes() == (canvas / rel).read_bytes()
    write_canvas_set(tmp_path / "other", CanvasConfig(train=0, val=4, size=96, seed=1))
    assert (tmp_path / "other/val/000000.png").read_bytes() != (canvas / "val/000000.png").read_bytes()


def test_collate_keeps_lists(canvas):
    ds = get_dataset("coco", "train", canvas, input_size=(3, 96, 96))
    images, targets = detection_collate([ds[0], ds[1]])
    assert len(images) == len(targets) == 2 and set(targets[0]) >= {"boxes", "labels"}


def test_folder_without_annotations_is_a_usage_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(UsageError, match="no COCO annotations") as err:
        get_dataset("coco", "train", tmp_path)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="not found"):
        get_dataset("coco", "train", tmp_path / "missing")
