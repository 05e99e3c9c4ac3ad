"""Datasets and their preprocessing.

A dataset's preprocessing (mean, std, input size) is part of its definition:
it is recorded in every checkpoint and report so a deployed model is fed the
same way it was trained.
"""

from __future__ import annotations

from trtprune.data.preprocessing import Preprocessing
from trtprune.data.registry import get_dataset, get_spec
from trtprune.data.spec import DATASETS, DatasetSpec

__all__ = ["DATASETS", "DatasetSpec", "Preprocessing", "get_dataset", "get_spec"]
