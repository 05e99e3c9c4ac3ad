"""Tensor-level transforms shared by the datasets (no PIL needed)."""

from __future__ import annotations

import torch

from trtprune.data.preprocessing import Preprocessing


def normalize(x: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    """Normalise a float tensor in [0, 1] of shape (..., C, H, W)."""
    mean = torch.tensor(pre.mean, dtype=x.dtype).view(-1, 1, 1)
    std = torch.tensor(pre.std, dtype=x.dtype).view(-1, 1, 1)
    return (x - mean) / std


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's CIFAR augmentation: pad, random crop back to size, random horizontal flip."""
    _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    top, left = (int(v) for v in torch.randint(0, 2 * padding + 1, (2,), generator=generator))
    out = padded[:, top : top + h, left : left + w]
    if bool(torch.rand((), generator=generator) < 0.5):
        out = out.flip(-1)
    return out
