"""The preprocessing that belongs to a dataset."""

from __future__ import annotations

from dataclasses import dataclass

from trtprune.core.records import Record


@dataclass(frozen=True)
class Preprocessing(Record):
    """Per-channel normalisation and the network input size (C, H, W)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
