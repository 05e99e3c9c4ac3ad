"""COCO-format detection data (``--data coco --data-root DIR``), as torchvision's detectors take it.

``DIR/annotations/instances_{train,val}.json`` with images under ``DIR/train/`` and ``DIR/val/``
(``train2017``/``val2017`` names work too). An item is ``(image, target)``: the image a float
tensor in [0, 1] resized to the model's input (the detectors normalise inside, so the deployed
model is fed the same), the target ``{"boxes": (n, 4) x1 y1 x2 y2 float in input pixels,
"labels": (n,) int64 COCO category ids (>= 1; 0 is the background), "image_id": int,
"orig_size": (h, w) of the file}``. Crowd and empty boxes are left out of the targets; the
evaluation compares against the json itself (:mod:`trtprune.engine.detection_eval`).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from trtprune.core.errors import DataError, UsageError
from trtprune.data.preprocessing import Preprocessing
from trtprune.data.spec import DATASETS, DatasetSpec

log = logging.getLogger(__name__)

_SPLIT_NAMES = {"train": ("train", "train2017"), "test": ("val", "val2017")}
LAYOUT = "DIR/annotations/instances_{train,val}.json with images in DIR/train/ and DIR/val/ (or train2017/val2017)"


def find_split(root: Path, split: str) -> tuple[Path, Path]:
    """(annotation json, image folder) of ``split`` ('train' or 'test', which reads val)."""
    for name in _SPLIT_NAMES[split]:
        ann = root / "annotations" / f"instances_{name}.json"
        if ann.is_file():
            images = root / name
            if not images.is_dir():
                raise DataError(f"COCO images folder {images} not found beside {ann}; expected {LAYOUT}")
            return ann, images
    wanted = " or ".join(f"annotations/instances_{n}.json" for n in _SPLIT_NAMES[split])
    raise UsageError(f"{root} has no COCO annotations ({wanted}); expected {LAYOUT}")


def load_coco(path: Path) -> Any:
    """A pycocotools ``COCO`` index of ``path`` (its progress prints silenced)."""
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise DataError(f"{path} is not COCO annotation json ({type(exc).__name__}: {exc})") from None


class CocoDetection:
    """A COCO-format split: images resized to ``input_size`` (C, H, W), boxes scaled alike."""

    def __init__(self, annotations: Path, images: Path, input_size: tuple[int, int, int], augment: bool) -> None:
        self.coco = load_coco(annotations)
        self.images = images
        self.ids = sorted(self.coco.getImgIds())
        self.input_size = tuple(input_size)
        self.augment = augment
        cats = self.coco.getCatIds()
        self.num_classes = max(cats, default=0) + 1  # labels are the category ids; 0 is the background
        self.class_names = {c["id"]: c["name"] for c in self.coco.loadCats(cats)}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        import torch
        from PIL import Image

        info = self.coco.loadImgs(self.ids[i])[0]
        c, h, w = self.input_size
        with Image.open(self.images / info["file_name"]) as img:
            orig_w, orig_h = img.size
            img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8).copy()
        x = torch.from_numpy(pixels).float().div_(255.0)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        boxes, labels = self._boxes(info["id"], w / orig_w, h / orig_h)
        if self.augment and torch.rand(()) < 0.5:
            x = x.flip(-1)
            boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
        target = {"boxes": boxes, "labels": labels, "image_id": int(info["id"]), "orig_size": (orig_h, orig_w)}
        return x.contiguous(), target

    def _boxes(self, image_id: int, sx: float, sy: float) -> tuple[Any, Any]:
        import torch

        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id, iscrowd=False))
        rows = [(a["bbox"], a["category_id"]) for a in anns if a["bbox"][2] >= 1 and a["bbox"][3] >= 1]
        boxes = torch.tensor([[x * sx, y * sy, (x + bw) * sx, (y + bh) * sy] for (x, y, bw, bh), _ in rows])
        labels = torch.tensor([cat for _, cat in rows], dtype=torch.int64)
        return boxes.reshape(-1, 4).float(), labels


def detection_collate(batch: list[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """A DataLoader batch as torchvision detectors take it: a list of images and a list of targets."""
    return [x for x, _ in batch], [t for _, t in batch]


def _load(spec: DatasetSpec, root: Path | None, split: str, augment: bool) -> CocoDetection:
    if root is None:
        raise UsageError(f"COCO data needs a folder; {spec.missing_hint}")
    if not root.is_dir():
        raise UsageError(f"COCO folder {root} not found; {spec.missing_hint}")
    annotations, images = find_split(root, split)
    return CocoDetection(annotations, images, spec.preprocessing.input_size, augment)


DATASETS.register(
    "coco",
    DatasetSpec(
        name="coco",
        default_root=None,
        num_classes=None,  # from the data: the largest category id + 1
        # torchvision's detectors normalise inside (their transform); the deployed model is fed [0, 1]
        preprocessing=Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=(3, 320, 320)),
        loader=_load,
        missing_hint=f"pass --data-root DIR (or set TRTPRUNE_COCO_ROOT) holding {LAYOUT}; "
        "'python -m trtprune.data.canvas --out DIR' writes a small one",
        resizes=True,
        task="detect",
    ),
)
