"""The design card on ResNet-50: a block table at 224 px, then prune on an ImageFolder, end to end.

The ImageFolder is a few generated 224 px images in two classes: accuracy means nothing here;
the plumbing (table, decision, matching, fine-tune, export, engine, report) and the budget do.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from trtprune.engine.timing import TimingConfig

FAST = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, warmup_ms=50, retries=0)


def make_image_folder(root, per_class: int = 4, size: int = 224) -> None:
    """``root/{train,val}/{a,b}/*.png``: class a is bright-on-left, class b bright-on-right noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c, label in enumerate("ab"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(0, 96, (size, size, 3), dtype=np.uint8)
                half = slice(0, size // 2) if c == 0 else slice(size // 2, size)
                img[:, half] += 128
                Image.fromarray(img).save(folder / f"{i}.png")


@pytest.mark.slow
def test_resnet50_block_table_then_prune_on_an_image_folder(tmp_path, run_cli):
    data = tmp_path / "images"
    make_image_folder(data)
    table = tmp_path / "resnet50" / "lut.db"
    from trtprune.lut.build import LutConfig, build_lut

    build_lut(
        LutConfig(model="resnet50", input_shape=(1, 3, 224, 224), mode="block", step=256, small=0, refine=False,
                  timing=FAST),
        table,
    )  # fmt: skip
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        "prune", "resnet50", "--lut", table, "--budget-ratio", "0.9", "--data", "imagefolder", "--data-root", data,
        "--finetune-epochs", "1", "--match-rounds", "3", "--match-calls", "1", "--out", out, "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["model"] == "resnet50" and report["input_shape"] == [1, 3, 224, 224]
    assert report["stages"][-1]["measured_share"] <= 0.9  # the matched choice fits the budget
    assert report["params"] < report["base_params"]
    assert {"plan.json", "model.pt", "model.onnx", "model.ort.onnx", "report.json", "journal.json"} <= {
        p.name for p in out.iterdir()
    }
