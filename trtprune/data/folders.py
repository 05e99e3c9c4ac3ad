"""User-supplied datasets: CIFAR-10 python batches and ImageFolder trees."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from trtprune.core.errors import DataError
from trtprune.data.fashion_mnist import ArrayDataset
from trtprune.data.preprocessing import Preprocessing
from trtprune.data.spec import DATASETS, DatasetSpec
from trtprune.data.transforms import normalize

_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _load_cifar10(spec: DatasetSpec, root: Path | None, split: str, augment: bool) -> ArrayDataset:
    if root is None:
        raise DataError(f"CIFAR-10 needs a folder; {spec.missing_hint}")
    images, labels = [], []
    for name in _CIFAR_BATCHES[split]:
        path = root / name
        if not path.exists():
            raise DataError(f"CIFAR-10 batch {path} not found; {spec.missing_hint}")
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")  # the official format is a pickle
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
        except Exception as exc:  # noqa: BLE001 - any decoding failure means a corrupt file
            raise DataError(f"corrupt CIFAR-10 batch {path}: {exc}") from None
    return ArrayDataset(
        np.concatenate(images).transpose(0, 2, 3, 1), np.concatenate(labels), spec.preprocessing, augment
    )


class ImageFolderDataset:
    """``root/<split>/<class>/<image>`` read with PIL, resized and centre-cropped to the input size."""

    EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp"}

    def __init__(self, root: Path, pre: Preprocessing, augment: bool) -> None:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        if not classes:
            raise DataError(f"ImageFolder {root} has no class sub-folders; expected {root}/<class>/<image>")
        self.samples = [
            (p, i)
            for i, c in enumerate(classes)
            for p in sorted((root / c).rglob("*"))
            if p.suffix.lower() in self.EXTENSIONS
        ]
        if not self.samples:
            raise DataError(f"ImageFolder {root} holds no images ({', '.join(sorted(self.EXTENSIONS))})")
        self.classes = classes
        self.pre = pre
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        import torch
        from PIL import Image

        path, label = self.samples[i]
        c, h, w = self.pre.input_size
        img = Image.open(path).convert("L" if c == 1 else "RGB")
        scale = max(h, w) / 0.875 / min(img.size)  # resize the short side, then centre-crop (ImageNet habit)
        img = img.resize((max(w, round(img.size[0] * scale)), max(h, round(img.size[1] * scale))), Image.BILINEAR)
        left, top = (img.size[0] - w) // 2, (img.size[1] - h) // 2
        img = img.crop((left, top, left + w, top + h))
        if self.augment and torch.rand(()) < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).float().div_(255.0)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        return normalize(x, self.pre), label


def _load_imagefolder(spec: DatasetSpec, root: Path | None, split: str, augment: bool) -> ImageFolderDataset:
    if root is None:
        raise DataError(f"ImageFolder needs a folder; {spec.missing_hint}")
    split_root = root / ("val" if split == "test" and not (root / "test").exists() else split)
    if not split_root.is_dir():
        raise DataError(f"ImageFolder split folder {split_root} not found; {spec.missing_hint}")
    return ImageFolderDataset(split_root, spec.preprocessing, augment)


DATASETS.register(
    "cifar10",
    DatasetSpec(
        name="cifar10",
        default_root=None,
        num_classes=10,
        preprocessing=Preprocessing(
            mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010), input_size=(3, 32, 32)
        ),
        loader=_load_cifar10,
        missing_hint="pass --data-root DIR (or set TRTPRUNE_CIFAR10_ROOT) to the extracted 'cifar-10-batches-py' folder",
    ),
)

DATASETS.register(
    "imagefolder",
    DatasetSpec(
        name="imagefolder",
        default_root=None,
        num_classes=None,
        preprocessing=Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=(3, 224, 224)),
        loader=_load_imagefolder,
        resizes=True,
        missing_hint="pass --data-root DIR (or set TRTPRUNE_IMAGEFOLDER_ROOT) holding train/<class>/*.jpg and val/<class>/*.jpg",
    ),
)
