"""Fashion-MNIST read from the idx files of Debian's ``dataset-fashion-mnist``."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from trtprune.core.errors import DataError
from trtprune.data.preprocessing import Preprocessing
from trtprune.data.spec import DATASETS, DatasetSpec
from trtprune.data.transforms import normalize, random_crop_flip

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read one (optionally gzipped) idx file into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte idx file")
        dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise DataError(
            f"corrupt idx file {path}: {exc}; reinstall with 'apt-get install --reinstall dataset-fashion-mnist'"
        ) from None


class ArrayDataset:
    """Images held as uint8 arrays (N, H, W[, C]) with labels; returns normalised CHW tensors."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, pre: Preprocessing, augment: bool, pad: int = 4) -> None:
        import torch

        imgs = torch.from_numpy(np.array(images, copy=True))
        if imgs.ndim == 3:
            imgs = imgs.unsqueeze(1)
        elif imgs.shape[-1] in (1, 3):
            imgs = imgs.permute(0, 3, 1, 2)
        self.images = imgs.contiguous()
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.pre = pre
        self.augment = augment
        self.pad = pad

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):

        x = self.images[i].float().div_(255.0)
        if self.augment:
            x = random_crop_flip(x, self.pad)
        return normalize(x, self.pre), self.labels[i]


def _load(spec: DatasetSpec, root: Path | None, split: str, augment: bool) -> ArrayDataset:
    assert root is not None
    img_name, lbl_name = _FILES[split]
    paths = [root / img_name, root / lbl_name]
    for p in paths:
        if not p.exists():
            raise DataError(f"Fashion-MNIST file {p} not found; {spec.missing_hint}")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if len(images) != len(labels):
        raise DataError(f"Fashion-MNIST in {root} is corrupt: {len(images)} images but {len(labels)} labels")
    return ArrayDataset(images, labels, spec.preprocessing, augment)


DATASETS.register(
    "fashion-mnist",
    DatasetSpec(
        name="fashion-mnist",
        default_root="/usr/share/datasets/fashion-mnist",
        num_classes=10,
        preprocessing=Preprocessing(mean=(0.2860,), std=(0.3530,), input_size=(1, 28, 28)),
        loader=_load,
        missing_hint="install it with 'apt-get install dataset-fashion-mnist' or pass --data-root DIR holding the four idx .gz files",
    ),
)
