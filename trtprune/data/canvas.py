"""The canvas set: a small COCO-format detection set built from Fashion-MNIST items.

Each image is a square grey canvas on which a few Fashion-MNIST items (from the train split for
``train``, the test split for ``val``) are pasted at several scales without overlapping; each item's
box is the tight box of its ink. Everything follows from the seed, so the same arguments write the
same bytes. Layout (what :mod:`trtprune.data.coco` reads)::

    OUT/annotations/instances_train.json   OUT/train/000000.png ...
    OUT/annotations/instances_val.json     OUT/val/000000.png ...

Run ``python -m trtprune.data.canvas --out DIR --train N --val M --size 320 --seed 0``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trtprune.core.atomic import write_json
from trtprune.core.errors import DataError, TrtpruneError, UsageError
from trtprune.data.fashion_mnist import _FILES, read_idx

log = logging.getLogger(__name__)

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
INK = 16  # a pixel above this grey level belongs to the item (its box is the tight box of these)
_SOURCE_SPLIT = {"train": "train", "val": "test"}  # canvases never share items across splits


@dataclass(frozen=True)
class CanvasConfig:
    """What a canvas set holds: image counts, canvas side, items per canvas and their scales."""

    train: int = 200
    val: int = 50
    size: int = 320
    seed: int = 0
    max_items: int = 4
    scales: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0)  # item side = 28 x scale, capped at half the canvas


@dataclass(frozen=True)
class Placed:
    """One pasted item: its class (0-based Fashion-MNIST label) and box (x, y, w, h) in pixels."""

    label: int
    box: tuple[int, int, int, int]


def _scaled_item(item: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(item).resize((side, side), Image.BILINEAR), dtype=np.uint8)


def _ink_box(patch: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(patch > INK)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def compose_canvas(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, config: CanvasConfig
) -> tuple[np.ndarray, list[Placed]]:
    """One canvas (uint8, size x size) and the items placed on it (at least one)."""
    size = config.size
    canvas = rng.integers(0, INK // 2, (size, size), dtype=np.uint8)  # faint noise below the ink level
    placed: list[Placed] = []
    frames: list[tuple[int, int, int, int]] = []
    for _ in range(int(rng.integers(1, config.max_items + 1))):
        k = int(rng.integers(len(images)))
        side = min(round(28 * float(rng.choice(config.scales))), size // 2)
        patch = _scaled_item(images[k], side)
        box = _ink_box(patch)
        for _try in range(20):
            x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
            frame = (x, y, side, side)
            if box is not None and not any(_overlaps(frame, f) for f in frames):
                break
        else:
            continue  # no free spot (or an inkless item): leave it out
        canvas[y : y + side, x : x + side] = np.maximum(canvas[y : y + side, x : x + side], patch)
        frames.append(frame)
        placed.append(Placed(int(labels[k]), (x + box[0], y + box[1], box[2], box[3])))
    if not placed:
        return compose_canvas(rng, images, labels, config)
    return canvas, placed


def _coco_json(entries: list[tuple[str, list[Placed]]], size: int) -> dict:
    images, annotations = [], []
    for image_id, (file_name, placed) in enumerate(entries, start=1):
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for p in placed:
            x, y, w, h = p.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": p.label + 1,  # COCO ids start at 1; 0 is the detectors' background
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n, "supercategory": "fashion"} for i, n in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _load_source(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_name, lbl_name = _FILES[split]
    for p in (root / img_name, root / lbl_name):
        if not p.exists():
            raise DataError(
                f"Fashion-MNIST file {p} not found; install it with 'apt-get install dataset-fashion-mnist' "
                "or pass --source DIR holding the four idx .gz files"
            )
    return read_idx(root / img_name), read_idx(root / lbl_name)


def write_split(out: Path, split: str, count: int, config: CanvasConfig, source: Path) -> int:
    """Write ``count`` canvases of ``split`` ('train' or 'val') and their COCO json; returns the box count."""
    from PIL import Image

    images, labels = _load_source(source, _SOURCE_SPLIT[split])
    rng = np.random.default_rng([config.seed, 0 if split == "train" else 1])
    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(count):
        canvas, placed = compose_canvas(rng, images, labels, config)
        name = f"{i:06d}.png"
        Image.fromarray(canvas, mode="L").save(folder / name, optimize=False)
        entries.append((name, placed))
    write_json(out / "annotations" / f"instances_{split}.json", _coco_json(entries, config.size))
    return sum(len(p) for _, p in entries)


def write_canvas_set(
    out: str | os.PathLike[str], config: CanvasConfig = CanvasConfig(), source: str | os.PathLike[str] | None = None
) -> dict[str, int]:
    """Write the canvas set under ``out``; returns the number of boxes of each split."""
    if config.size < 56:
        raise UsageError(
            f"canvas size {config.size} is too small: use --size 56 or more (two 28-px items side by side)"
        )
    if config.train < 0 or config.val < 0:
        raise UsageError("--train and --val count images: pass numbers >= 0")
    out, src = Path(out), Path(source or FASHION_MNIST_ROOT)
    boxes = {
        split: write_split(out, split, n, config, src) for split, n in (("train", config.train), ("val", config.val))
    }
    log.info("canvas set in %s: %d/%d images, %d/%d boxes", out, config.train, config.val, boxes["train"], boxes["val"])
    return boxes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trtprune.data.canvas", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write (annotations/, train/, val/)")
    parser.add_argument("--train", type=int, default=CanvasConfig.train, help="train images")
    parser.add_argument("--val", type=int, default=CanvasConfig.val, help="val images")
    parser.add_argument("--size", type=int, default=CanvasConfig.size, help="canvas side in pixels")
    parser.add_argument("--seed", type=int, default=CanvasConfig.seed)
    parser.add_argument("--source", type=Path, default=None, help=f"Fashion-MNIST idx folder ({FASHION_MNIST_ROOT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = CanvasConfig(train=args.train, val=args.val, size=args.size, seed=args.seed)
    try:
        boxes = write_canvas_set(args.out, config, args.source)
    except TrtpruneError as exc:
        logging.getLogger("trtprune").error("error: %s", exc)
        return exc.exit_code
    log.info("%s", json.dumps(boxes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
