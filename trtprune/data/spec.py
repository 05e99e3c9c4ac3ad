"""What a dataset entry is: a :class:`DatasetSpec` (its files, preprocessing, loader, task), and the
registry of them, filled by the loader modules."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
