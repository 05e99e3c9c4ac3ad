"""Parsing of input-shape strings such as ``1x3x224x224``."""

from __future__ import annotations

from trtprune.core.errors import UsageError


def parse_shape(text: str | tuple[int, ...] | list[int]) -> tuple[int, int, int, int]:
    """Parse ``NxCxHxW`` into a 4-tuple of positive ints (NCHW)."""
    if isinstance(text, (tuple, list)):
        parts = [str(p) for p in text]
    else:
        parts = str(text).strip().lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 4 or any(d <= 0 for d in dims):
        raise UsageError(f"malformed input shape {text!r}: expected four positive integers NxCxHxW, e.g. 1x3x224x224")
    return dims  # type: ignore[return-value]


def format_shape(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(int(d)) for d in shape)
