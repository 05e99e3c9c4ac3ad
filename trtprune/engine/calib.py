"""Calibration inputs for INT8: a stack of preprocessed samples saved as .npy."""

from __future__ import annotations

import argparse
import os

import numpy as np

from trtprune.core.atomic import atomic_path
from trtprune.core.errors import DataError
from trtprune.data import get_dataset


def make_calibration_set(data: str, count: int, root: str | None = None, seed: int = 0) -> np.ndarray:
    """``count`` preprocessed test-split samples of ``data`` as a float32 NCHW array."""

    ds = get_dataset(data, "test", root)
    idx = np.random.default_rng(seed).choice(len(ds), size=min(count, len(ds)), replace=False)
    return np.stack([np.asarray(ds[int(i)][0], dtype=np.float32) for i in sorted(idx)])


def load_calibration_set(path: str | os.PathLike[str]) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"calibration file {path} is missing or not a .npy array ({exc})") from None
    if arr.ndim != 4 or arr.dtype != np.float32:
        raise DataError(f"calibration file {path} must hold float32 NxCxHxW, not {arr.dtype} {arr.shape}")
    return arr


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--data-root")
    parser.add_argument("--count", type=int, default=512)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    arr = make_calibration_set(args.data, args.count, args.data_root)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


if __name__ == "__main__":
    main()
