"""Which widths to measure, where to refine, and the staircase between measured widths.

Engines pad channel counts to hardware-friendly multiples (8 for FP16 tensor
cores, 32 for INT8), so latency against width is a staircase. The default grid
is every multiple of ``step`` (every count for groups of at most ``small``
channels); where two neighbouring grid points differ by more than the jump
threshold and by more than the slope around them, the interval is bisected to
find the step's edge.

Between measured widths, two rules (the table's ``between``):

- ``staircase`` (tables on the full step grid): a width costs what the next measured width up
  costs (a 50-channel tensor runs like 56);
- ``linear`` (tables on a sparse grid of ``points`` widths per group): a width runs as its padded
  width (the next multiple of the step), read on the straight line between the measured widths
  around it. A sparse grid read as a staircase would charge every width between two measured
  points the cost of the wider one; refinement still bisects where the curve jumps, so a
  padding edge is measured, not smoothed over.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trtprune.graph.groups import ChannelGroup


def grid_widths(
    channels: int,
    step: int = 8,
    small: int = 16,
    partitions: int = 1,
    coarse_above: int | None = None,
    points: int | None = None,
) -> list[int]:
    """Initial grid for a group of ``channels`` (ascending, always ending at ``channels``).

    ``points``: at most this many multiples of ``step`` below the full width: the smallest, and
    those nearest 1/points, 2/points... of the channels (a sparse grid, read linearly between its
    widths). Without it,
    every multiple; groups wider than ``coarse_above`` start every ``2 * step``: one step of a
    wide group moves latency by a small fraction of what the table resolves, and refinement
    still bisects every interval where the curve jumps (an engine's padding edge), so the table
    keeps its edges at half the engines.
    """
    if channels <= small or step <= 1:
        widths = list(range(1, channels + 1))
    elif points:  # the smallest multiple, then the multiples nearest k/points of the channels
        below = np.arange(step, channels, step)
        near = (
            {int(below[np.abs(below - channels * k / points).argmin()]) for k in range(1, points)}
            if len(below)
            else set()
        )
        widths = sorted(near | set(below[:1].tolist())) + [channels]
    else:
        stride = 2 * step if coarse_above is not None and channels > coarse_above else step
        widths = list(range(stride, channels, stride)) + [channels]
    if partitions > 1:
        widths = sorted({max(partitions, (w // partitions) * partitions) for w in widths})
    return widths


def refine_candidates(
    deltas: Mapping[int, float], threshold_ms: float, partitions: int = 1, trend: float = 1.5
) -> list[int]:
    """Midpoints of the intervals where the curve jumps.

    An interval jumps when its latency change exceeds ``threshold_ms`` and its slope
    exceeds ``trend`` times the mean slope of its neighbouring intervals: a staircase's
    edge, not a steady slope (a wide layer's curve falls by more than the threshold at
    every grid step, and splitting those intervals would find no edge).
    """
    widths = sorted(deltas)
    slopes = [abs(deltas[b] - deltas[a]) / (b - a) for a, b in zip(widths, widths[1:], strict=False)]
    out = []
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        mid = ((a + b) // 2 // partitions) * partitions
        if not (b - a > partitions and a < mid < b and abs(deltas[b] - deltas[a]) > threshold_ms):
            continue
        around = slopes[max(0, i - 1) : i] + slopes[i + 1 : i + 2]
        if not around or slopes[i] > trend * sum(around) / len(around):
            out.append(mid)
    return out


def staircase(deltas: Mapping[int, float], width: int) -> float:
    """The measured value at the smallest measured width >= ``width`` (the widest if none)."""
    widths = sorted(deltas)
    i = bisect.bisect_left(widths, width)
    return deltas[widths[min(i, len(widths) - 1)]]


def linear(deltas: Mapping[int, float], width: int, step: int) -> float:
    """The value at ``width`` (measured, or its padded width's on the line between the measured
    widths around it; the nearest measured end outside them)."""
    if width in deltas:
        return deltas[width]
    widths = sorted(deltas)
    padded = -(-width // step) * step if step > 1 else width
    if padded in deltas:
        return deltas[padded]
    i = bisect.bisect_left(widths, padded)
    if i == 0 or i == len(widths):
        return deltas[widths[min(i, len(widths) - 1)]]
    a, b = widths[i - 1], widths[i]
    return deltas[a] + (deltas[b] - deltas[a]) * (padded - a) / (b - a)


def widths_around(rng: np.random.Generator, allowed: Mapping[str, np.ndarray], ratio: float) -> dict[str, int]:
    """Each group at its allowed width (ascending) nearest ``ratio`` x U(0.6, 1.4) of its widest, clipped to
    it: a plan cut unevenly around one ratio, as a budget's solution cuts a network."""
    widths = {}
    for name, grid in allowed.items():
        target = float(np.clip(ratio * rng.uniform(0.6, 1.4), 0.0, 1.0)) * grid[-1]
        widths[name] = int(grid[np.argmin(np.abs(grid - target))])
    return widths


BETWEEN = {"staircase": lambda deltas, width, step: staircase(deltas, width), "linear": linear}


def allowed_widths(group: ChannelGroup, current: int, round_to: int | None) -> np.ndarray:
    """Multiples of ``round_to`` (and of the group's conv blocks), every count below ``round_to``,
    and the current width. Counts below the alignment are cheap on every engine measured here
    (one padded vector), while unaligned counts above it can be slower than the next multiple."""
    step = group.partitions
    if round_to and round_to > 1 and group.channels > round_to:
        step = int(np.lcm(step, round_to))
    small = np.arange(group.partitions, min(step, current + 1), group.partitions)
    ks = np.unique(np.concatenate([small, np.arange(step, current + 1, step)])).astype(int)
    if len(ks) == 0 or ks[-1] != current:
        ks = np.append(ks, current)
    return ks
