"""Looking up and loading the registered datasets (the loaders register when imported)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from trtprune.core.errors import UsageError
from trtprune.data import coco, fashion_mnist, folders  # noqa: F401 (importing them registers their datasets)
from trtprune.data.spec import DATASETS, DatasetSpec

if TYPE_CHECKING:
    from torch.utils.data import Dataset


def get_spec(name: str) -> DatasetSpec:
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
