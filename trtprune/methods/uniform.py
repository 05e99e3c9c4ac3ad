"""Two magnitude baselines, bisected on the table's predicted latency to meet the goal.

``uniform``: one keep ratio for every group (channels ranked by L1 inside each group).
``global-l1``: Torch-Pruning's usual global pruning: one L1 ranking across all groups
(each channel's L1 over every coupled layer, producers and consumers, divided by its
group's mean as Torch-Pruning's default normaliser does) cut at one threshold.

Both bisect their one knob (the ratio, or the threshold) over the values where some
width changes, on predicted latency; the shared matching loop
(:mod:`trtprune.decide.matching`) then moves the goal until the choice measures just under
the target in the engine. Widths are rounded down
to the table's grid (as every method's are) and never below one grid block.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trtprune.core.errors import InfeasibleBudget
from trtprune.graph.norms import channel_sq_norms
from trtprune.methods.base import METHODS, Method, StageState, allowed_widths_of, width_decision
from trtprune.methods.description import MethodDescription


def _round_down(ks: np.ndarray, want: float) -> int:
    """The largest allowed width <= ``want`` (the smallest allowed one if none)."""
    below = ks[ks <= want + 1e-9]
    return int(below[-1]) if len(below) else int(ks[0])


def bisect_knob(
    candidates: np.ndarray,
    widths_at: Callable[[float], dict[str, int]],
    predict: Callable[[dict[str, int]], float],
    goal: float,
) -> dict[str, int]:
    """The widths at the largest knob (``candidates`` ordered from most to least pruning) that
    predicts at most ``goal``, found by bisection. A measured table is not exactly monotone in
    the knob, so the bisection runs on its running maximum (the latency of a knob is taken as the
    highest predicted at any smaller knob): the choice then never jumps back as the goal grows."""
    envelope = np.maximum.accumulate([predict(widths_at(c)) for c in candidates])
    if envelope[0] > goal:
        raise InfeasibleBudget(
            f"even the smallest widths predict {envelope[0]:.4f} ms > goal {goal:.4f} ms", float(envelope[0])
        )
    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if envelope[mid] <= goal:
            lo = mid
        else:
            hi = mid - 1
    return widths_at(candidates[lo])


@METHODS.register("uniform")
class Uniform(Method):
    name = "uniform"
    importance = "l1"

    def decide(self, state: StageState, goal_ms: float):
        allowed = allowed_widths_of(state)
        channels = {g.name: g.channels for g in state.groups.groups}

        def widths_at(ratio: float) -> dict[str, int]:
            return {n: _round_down(ks, ratio * channels[n]) for n, ks in allowed.items()}

        ratios = np.unique(np.concatenate([ks / channels[n] for n, ks in allowed.items()]))
        widths = bisect_knob(ratios, widths_at, state.latency.predict_widths, goal_ms)
        return width_decision(state, widths)

    def describe(self) -> MethodDescription:
        return MethodDescription(method=self.name, importance="l1", search="bisection on one keep ratio")


@METHODS.register("global-l1")
class GlobalL1(Method):
    name = "global-l1"

    def score(self, state: StageState) -> dict[str, np.ndarray]:

        scores = {}
        for g in state.groups.groups:
            s = channel_sq_norms(state.groups, g, "out", power=1.0) + channel_sq_norms(state.groups, g, "in", power=1.0)
            mean = s.mean()
            scores[g.name] = s / mean if mean > 0 else s
        return scores

    def decide(self, state: StageState, goal_ms: float):
        allowed = allowed_widths_of(state)
        groups = state.groups.by_name

        def widths_at(threshold: float) -> dict[str, int]:
            out = {}
            for n, ks in allowed.items():
                per_block = state.scores[n].reshape(groups[n].partitions, -1).sum(0) / groups[n].partitions
                out[n] = _round_down(ks, groups[n].partitions * int((per_block >= threshold).sum()))
            return out

        # thresholds at every score (descending score = ascending pruning): keep more as the threshold drops
        thresholds = np.unique(np.concatenate([s for s in state.scores.values()]))[::-1]
        widths = bisect_knob(thresholds, widths_at, state.latency.predict_widths, goal_ms)
        return width_decision(state, widths)

    def describe(self) -> MethodDescription:
        return MethodDescription(
            method=self.name, importance="group L1 / group mean", search="bisection on one threshold"
        )
