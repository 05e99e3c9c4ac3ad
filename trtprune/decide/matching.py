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

A choice measured under the target is measured once more and counts with the slower of its
two measurements (only such a choice can be returned): on a shared machine one measurement can fall in a fast spell (a small model's
paired share moves by up to 40% between spells minutes apart), and a choice accepted on it
would measure over the budget in the final measurement. Each measurement is itself the mean of
``MatchPolicy.calls`` harness calls beside the base: one call's share of a detector moves by 4-7%
from call to call on the machines measured here, and the slower of two single calls then sits far
above the model's mean, so a stage accepted on it lands well under its target.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trtprune.core.errors import InfeasibleBudget, UsageError
from trtprune.core.records import Record
from trtprune.decide.decision import Decision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatchPolicy(Record):
    """How a stage lands on its measured target: decide-build-time ``rounds`` per stage, stopping once
    a choice measures within ``tolerance`` (a share) under the target, aimed ``margin`` under it (the
    same model measured again later, as the report and compare do, moves by about its spread, 1-2.5%
    on the machines measured here). Every measurement of a choice, and the run's final measurement,
    is the mean share of ``calls`` harness calls beside the base (format 1 measured in one call)."""

    FORMAT = 2
    ADDED = {"calls": (2, 1)}

    rounds: int = 6
    tolerance: float = 0.03
    margin: float = 0.02
    calls: int = 3

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.calls < 1 or not 0 <= self.margin < 1 or not self.tolerance > 0:
            raise UsageError(
                f"matching needs rounds >= 1, calls >= 1, a margin in [0, 1) and a tolerance > 0, not "
                f"{self.rounds}, {self.calls}, {self.margin} and {self.tolerance}"
            )


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
    rounds: int = MatchPolicy.rounds,
    tolerance: float = MatchPolicy.tolerance,
    key: Callable[[Any], Any] = id,
    confirm: bool = True,
) -> Match:
    """``decide(goal)`` -> a choice (may raise InfeasibleBudget), ``predicted_of(choice)`` -> its
    predicted latency, ``measure(choice)`` -> its measured latency, all in the same unit as
    ``target`` and ``base`` (the unpruned latency). ``key(choice)`` identifies identical choices,
    which are measured once (twice when under the target, with ``confirm``)."""
    search = _Search(target, base)
    seen: dict[Any, float] = {}
    trace: list[tuple[float, float, float]] = []
    goal = target
    for _ in range(rounds):
        try:
            choice = decide(goal)
        except InfeasibleBudget as exc:
            nxt = search.after_infeasible(goal, getattr(exc, "smallest_ms", None))
            log.info("goal %.4f: infeasible for the method; next goal %.4f", goal, nxt)
            goal = nxt
            continue
        k = key(choice)
        repeat = k in seen
        measured = seen[k] if repeat else measure(choice)
        if confirm and not repeat and measured <= target:
            again = measure(choice)
            log.info("goal %.4f: measured %.4f, then %.4f (confirming before accepting)", goal, measured, again)
            measured = max(measured, again)
        seen[k] = measured
        predicted = predicted_of(choice)
        trace.append((goal, predicted, measured))
        if search.record(choice, goal, measured) and measured >= target * (1 - tolerance):
            break
        nxt = search.next_goal(goal, predicted, measured)
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
    if search.best_under is None and search.best_over is None:
        return Match(decide(target), float("nan"), False, 0, trace)  # raises the method's InfeasibleBudget
    if search.best_under is not None:
        return Match(*search.best_under, True, len(trace), trace)
    return Match(*search.best_over, False, len(trace), trace)


class _Search:
    """The brackets on the goal (goals known to measure under / over the target) and the best
    choices on either side."""

    def __init__(self, target: float, base: float) -> None:
        self.target, self.base = target, base
        self.lo: float | None = None
        self.hi: float | None = None
        self.best_under: tuple[Any, float] | None = None  # the slowest choice measured under the target
        self.best_over: tuple[Any, float] | None = None  # the fastest choice measured over it

    def record(self, choice: Any, goal: float, measured: float) -> bool:
        """Note a measured choice; True when it is under the target."""
        if measured <= self.target:
            if self.best_under is None or measured > self.best_under[1]:
                self.best_under = (choice, measured)
            self.lo = goal if self.lo is None or goal > self.lo else self.lo
            return True
        if self.best_over is None or measured < self.best_over[1]:
            self.best_over = (choice, measured)
        self.hi = goal if self.hi is None or goal < self.hi else self.hi
        return False

    def after_infeasible(self, goal: float, smallest: float | None) -> float:
        """Nothing fits ``goal`` in the method's own latency model: ask for less, at once for the
        smallest it can do when it says what that is."""
        self.lo = goal if self.lo is None or goal > self.lo else self.lo
        if smallest is not None and smallest > goal and (self.hi is None or smallest < self.hi):
            return smallest + 1e-9 * abs(self.base)  # just above it (a noisy table's floor may be negative)
        return (goal + self.hi) / 2 if self.hi is not None else goal + 0.5 * (self.base - goal)

    def next_goal(self, goal: float, predicted: float, measured: float) -> float:
        """The next goal; after a choice measured over the target, below its prediction (any goal at
        or above it returns the same choice)."""
        nxt = self._step(goal, predicted, measured)
        return min(nxt, predicted - 1e-6 * abs(self.base)) if measured > self.target else nxt

    def _step(self, goal: float, predicted: float, measured: float) -> float:
        """A secant step on the saving, kept strictly inside the brackets (bisection when it would leave them)."""
        base, target, lo, hi = self.base, self.target, self.lo, self.hi
        if measured < base:
            nxt = base - (base - target) * (base - predicted) / (base - measured)
        else:  # measured no saving at all: no secant; step down by the excess
            nxt = goal - (measured - target)
        if lo is not None and hi is not None and not lo < nxt < hi:
            return (lo + hi) / 2
        if hi is not None and nxt >= hi:
            return hi - (measured - target)
        if lo is not None and nxt <= lo:
            return lo + (target - measured)
        return nxt


def decision_key(decision: Decision) -> tuple:
    """Identical widths are one choice (measured once, or twice when confirmed)."""
    return tuple(sorted(decision.widths.items()))


def match_decisions(
    decide: Callable[[float], Decision],
    measure: Callable[[Decision], float],
    target: float,
    base: float,
    policy: MatchPolicy,
    scale: float = 1.0,
) -> Match:
    """A method's decision matched to a measured ``target`` under ``policy`` (aimed its margin under
    it): ``decide(goal)`` decides in the unit of the method's table, ``scale`` converts that unit into
    the unit of ``measure``, ``target`` and ``base`` (e.g. a table measured in another session, or
    shares of the base). What prune's stages and the cross-engine benchmark both do."""

    def scaled(goal: float) -> Decision:
        try:
            return decide(goal / scale)
        except InfeasibleBudget as exc:  # the smallest it can do, in the loop's unit
            if exc.smallest_ms is not None:
                exc.smallest_ms *= scale
            raise

    return match_target(
        scaled,
        lambda d: d.predicted_ms * scale,
        measure,
        target * (1 - policy.margin),
        base,
        rounds=policy.rounds,
        tolerance=policy.tolerance,
        key=decision_key,
    )
