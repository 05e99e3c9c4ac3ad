"""Matching a measured latency target: the goal a method is asked for is adjusted until the
engine's measurement of its choice lands just under the target.

A table is an estimate: a method asked for goal g picks widths whose *measured* latency
may be above the target (optimistic table) or well below it (pessimistic table: the
stage then prunes more than it must). Every method goes through this same loop, so
methods are compared at matched measured latency, not at matched table predictions.

Each round decides at the current goal and measures the choice. A measurement over
the target is an upper bracket, one under it a lower bracket. The next goal rescales
the saving asked of the table by the predicted / measured saving of the last choice
(a secant step), kept strictly inside the brackets (bisection when it would leave
them). The loop stops at a choice within ``tolerance`` under the target, and returns
the slowest choice measured under the target (the fastest one if none was).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trtprune.errors import InfeasibleBudget

log = logging.getLogger(__name__)


@dataclass
class Match:
    choice: Any  # what ``decide`` returned
    measured: float
    met: bool
    rounds: int
    trace: list[tuple[float, float, float]]  # (goal, predicted, measured) per round


def match_target(
    decide: Callable[[float], Any],
    predicted_of: Callable[[Any], float],
    measure: Callable[[Any], float],
    target: float,
    base: float,
    rounds: int = 6,
    tolerance: float = 0.03,
    key: Callable[[Any], Any] = id,
) -> Match:
    """``decide(goal)`` -> a choice (may raise InfeasibleBudget), ``predicted_of(choice)`` -> its
    predicted latency, ``measure(choice)`` -> its measured latency, all in the same unit as
    ``target`` and ``base`` (the unpruned latency). ``key(choice)`` identifies identical choices,
    which are measured once."""
    goal = target
    lo = hi = None  # goals known to measure under / over the target
    best_under = best_over = None
    seen: dict[Any, float] = {}
    trace: list[tuple[float, float, float]] = []
    for _ in range(rounds):
        try:
            choice = decide(goal)
        except InfeasibleBudget as exc:
            # nothing fits this goal in the method's own latency model: ask for less, at once for
            # the smallest it can do when it says what that is
            lo = goal if lo is None or goal > lo else lo
            smallest = getattr(exc, "smallest_ms", None)
            if smallest is not None and smallest > goal and (hi is None or smallest < hi):
                nxt = smallest + 1e-9 * abs(base)  # just above it (a noisy table's floor may be negative)
            else:
                nxt = (goal + hi) / 2 if hi is not None else goal + 0.5 * (base - goal)
            log.info("goal %.4f: infeasible for the method; next goal %.4f", goal, nxt)
            goal = nxt
            continue
        k = key(choice)
        repeat = k in seen
        measured = seen[k] if repeat else measure(choice)
        seen[k] = measured
        predicted = predicted_of(choice)
        trace.append((goal, predicted, measured))
        if measured <= target:
            if best_under is None or measured > best_under[1]:
                best_under = (choice, measured)
            lo = goal if lo is None or goal > lo else lo
            if measured >= target * (1 - tolerance):
                break
        else:
            if best_over is None or measured < best_over[1]:
                best_over = (choice, measured)
            hi = goal if hi is None or goal < hi else hi
        if measured < base:
            nxt = base - (base - target) * (base - predicted) / (base - measured)  # secant on the saving
        else:  # measured no saving at all: no secant; step down by the excess
            nxt = goal - (measured - target)
        if lo is not None and hi is not None and not lo < nxt < hi:
            nxt = (lo + hi) / 2
        elif hi is not None and nxt >= hi:
            nxt = hi - (measured - target)
        elif lo is not None and nxt <= lo:
            nxt = lo + (target - measured)
        log.info(
            "goal %.4f: predicted %.4f, measured %.4f (target %.4f); next goal %.4f",
            goal,
            predicted,
            measured,
            target,
            nxt,
        )
        if repeat and abs(nxt - goal) < 1e-9 * base:
            break
        goal = nxt
    if best_under is None and best_over is None:
        return Match(decide(target), float("nan"), False, 0, trace)  # raises the method's InfeasibleBudget
    if best_under is not None:
        return Match(best_under[0], best_under[1], True, len(trace), trace)
    return Match(best_over[0], best_over[1], False, len(trace), trace)
