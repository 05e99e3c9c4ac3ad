"""Latency lookup tables measured in the real engine (paper Eq. 6-7).

For every channel group and a grid of kept-channel counts, the table holds the
whole-network latency with that group at that width and every other group at its
current width (``network`` mode), or the latency change of just the sub-graph the
group touches (``block`` mode). Tables live in SQLite and resume after any kill.
"""

from __future__ import annotations

from trtprune.lut.store import LutMeta, LutStore

__all__ = ["LutMeta", "LutStore"]
