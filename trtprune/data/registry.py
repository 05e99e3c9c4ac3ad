"""Dataset registry: each entry knows its files, its preprocessing and its augmentation."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from trtprune.core.errors import UsageError
from trtprune.core.registry import Registry
from trtprune.data.preprocessing import Preprocessing

if TYPE_CHECKING:
    from torch.utils.data import Dataset


@dataclass(frozen=True)
class DatasetSpec:
    """How to find and load one dataset, and how its inputs are preprocessed."""

    name: str
    default_root: str | None
    num_classes: int | None
    preprocessing: Preprocessing
    loader: Callable[..., Dataset]
    missing_hint: str
    resizes: bool = False  # images are resized to the model's input (ImageFolder); else fixed-size arrays
    task: str = "classify"  # "classify": (image, label) items; "detect": (image, target dict) items, COCO boxes

    def root(self, root: str | os.PathLike[str] | None) -> Path | None:
        chosen = root or os.environ.get(f"TRTPRUNE_{self.name.upper().replace('-', '_')}_ROOT")
        chosen = chosen or self.default_root
        return Path(chosen) if chosen else None


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def get_spec(name: str) -> DatasetSpec:
    _ensure_registered()
    return DATASETS.get(name)


def get_dataset(
    name: str,
    split: str,
    root: str | os.PathLike[str] | None = None,
    augment: bool = False,
    limit: int | None = None,
    input_size: tuple[int, ...] | None = None,
) -> Dataset:
    """Load ``split`` ('train' or 'test') of a registered dataset as a torch Dataset.

    ``augment`` applies the dataset's training augmentation (the paper's CIFAR
    recipe: random crop with 4-pixel padding and horizontal flip) to the train split.
    ``limit`` keeps only the first N samples (for quick runs and tests).
    ``input_size`` (C, H, W) is the model's input: a dataset that resizes its images (ImageFolder)
    resizes to it; fixed-size datasets keep their own size.
    """

    if split not in ("train", "test"):
        raise UsageError(f"unknown split {split!r}; use 'train' or 'test'")
    spec = get_spec(name)
    if input_size is not None and spec.resizes:
        spec = replace(spec, preprocessing=replace(spec.preprocessing, input_size=tuple(int(x) for x in input_size)))
    ds = spec.loader(spec, spec.root(root), split, augment and split == "train")
    if limit is not None and limit < len(ds):
        import torch.utils.data

        ds = torch.utils.data.Subset(ds, range(limit))
    return ds


def _ensure_registered() -> None:
    # Importing the modules registers their datasets.
    from trtprune.data import coco, fashion_mnist, folders  # noqa: F401
