"""The pruning decision: SP-LAMP-ranked prefix sets per group, chosen by the exact group knapsack.

Each group's options are the prefix sets of its channels sorted by descending score
(paper Eq. 9): keep the top k, for every allowed k (multiples of ``round_to`` and of
the group's conv blocks; never 0, never more than the current width). An option's
value is the sum of its scores; its cost is the latency change the table predicts
for that width (Eq. 7, read off the staircase).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from trtprune.core.errors import InfeasibleBudget
from trtprune.decide.solver import group_knapsack
from trtprune.graph.groups import ModelGroups
from trtprune.lut.grid import allowed_widths
from trtprune.lut.predict import LatencyModel
from trtprune.surgery.plan import Plan, _expand_local, ranked_blocks

log = logging.getLogger(__name__)


class JoinedCost(Protocol):
    """A non-separable prediction of a plan's widths, and the change of it one group's width makes."""

    def joined_ms(self, widths: dict[str, int]) -> float: ...

    def joined_change(self, widths: dict[str, int], group: str, width: int) -> float: ...


@dataclass(frozen=True)
class Decision:
    plan: Plan
    widths: dict[str, int]
    predicted_ms: float
    value: float


def smallest_ms(
    groups: ModelGroups,
    latency: LatencyModel,
    round_to: int | None,
    joined: Callable[[], LatencyModel] | None = None,
) -> float:
    """The lowest latency the table predicts for any allowed widths (every group at its cheapest).

    The separable sum over-counts the saving of groups cut together; where it comes out at no
    latency at all (a noisy table), ``joined()`` (the table with its joined-layer correction,
    loaded only then) gives it."""
    cheapest = {
        g.name: int(min(allowed_widths(g, g.channels, round_to), key=lambda k, g=g: latency.delta_ms(g.name, int(k))))
        for g in groups.groups
    }
    separable = latency.base_ms + sum(latency.delta_ms(name, k) for name, k in cheapest.items())
    if separable > 0 or joined is None:
        return separable
    return joined().predict_widths(cheapest)


def infeasible(budget_ms: float, smallest: float, latency: LatencyModel, model_name: str) -> InfeasibleBudget:
    return InfeasibleBudget(
        f"budget {budget_ms:.4f} ms is below the smallest latency this table predicts for "
        f"{model_name} ({smallest:.4f} ms, base {latency.base_ms:.4f} ms): raise --budget-ms/--budget-ratio",
        smallest,
    )


def decide(
    groups: ModelGroups,
    scores: dict[str, np.ndarray],
    latency: LatencyModel,
    budget_ms: float,
    model_name: str,
    current: dict[str, int] | None = None,
    round_to: int | None = None,
    joined: JoinedCost | None = None,
) -> Decision:
    """Widths (and the channels kept) maximising total score with predicted latency <= ``budget_ms``.

    ``joined``: the full, non-separable prediction of a plan's widths (e.g. the table with its
    joined-layer correction). The knapsack is then re-solved around its last solution with every
    option costed by what ``joined`` says changing that group alone would change (:func:`_relinearised`),
    and the decision's prediction is ``joined.joined_ms``."""
    current = current or {g.name: g.channels for g in groups.groups}
    values, costs, options, orders = [], [], [], []
    for g in groups.groups:
        ks = allowed_widths(g, current[g.name], round_to)
        per_block, order = ranked_blocks(g, scores[g.name])
        prefix = np.concatenate([[0.0], np.cumsum(per_block[order])])
        values.append(prefix[ks // g.partitions])
        costs.append(np.array([latency.delta_ms(g.name, int(k)) for k in ks]))
        options.append(ks)
        orders.append(order)
    try:
        picked = group_knapsack(values, costs, budget_ms - latency.base_ms)
    except InfeasibleBudget:
        raise infeasible(budget_ms, latency.base_ms + sum(float(c.min()) for c in costs), latency, model_name) from None
    predict = latency.predict_widths
    if joined is not None:
        picked = _relinearised([g.name for g in groups.groups], values, options, picked, joined, budget_ms)
        predict = joined.joined_ms
    plan = Plan(model=model_name, input_shape=tuple(groups.example_input.shape))
    widths, value = {}, 0.0
    for g, ks, order, vals, i in zip(groups.groups, options, orders, values, picked, strict=True):
        k = int(ks[i])
        widths[g.name] = k
        value += float(vals[i])
        if k < g.channels:
            plan.groups[g.name] = _expand_local(g, order[: k // g.partitions])
    return Decision(plan, widths, predict(widths), value)


RELINEARISE_ROUNDS = 6


def _relinearised(
    names: list[str],
    values: list[np.ndarray],
    options: list[np.ndarray],
    picked: list[int],
    joined: JoinedCost,
    budget_ms: float,
) -> list[int]:
    """Re-solve the knapsack with costs linearised around the last solution w: option k of group g
    costs joined(w with g at k) - joined(w) (``joined.joined_change``), within budget - joined(w).
    Cuts that are cheap alone but save less together (widths off the engine's layout block across
    a whole stage, say) are then priced by what they save beside the others. Each solution is
    repaired by single-group moves (:class:`_Moves`) before it becomes the next point; stops when a
    point repeats. Returns the most valuable solution met within the budget in ``joined``, or, if
    none is, the fastest met."""
    moves = _Moves(names, values, options, joined, budget_ms)
    seen: dict[tuple[int, ...], float] = {}  # every solution met, with its prediction in ``joined``
    for _ in range(RELINEARISE_ROUNDS):
        seen.setdefault(tuple(picked), moves.ms(picked))
        picked = moves.repair(picked)
        at = seen.setdefault(tuple(picked), moves.ms(picked))
        w = moves.widths(picked)
        costs = [
            np.array([joined.joined_change(w, n, int(k)) for k in ks]) for n, ks in zip(names, options, strict=True)
        ]
        try:
            nxt = group_knapsack(values, costs, budget_ms - at)
        except InfeasibleBudget:
            break
        if tuple(nxt) in seen:
            break
        picked = nxt
    seen.setdefault(tuple(picked), moves.ms(picked))
    within = [c for c, ms in seen.items() if ms <= budget_ms]
    if not within:
        return list(min(seen, key=seen.get))
    return list(max(within, key=lambda c: (moves.value(c), -seen[c])))


class _Moves:
    """Single-group moves on a choice (one option index per group) under the full prediction."""

    def __init__(self, names, values, options, joined, budget_ms) -> None:
        self.names, self.values, self.options, self.joined, self.budget = names, values, options, joined, budget_ms

    def widths(self, choice) -> dict[str, int]:
        return {n: int(ks[i]) for n, ks, i in zip(self.names, self.options, choice, strict=True)}

    def ms(self, choice) -> float:
        return self.joined.joined_ms(self.widths(choice))

    def value(self, choice) -> float:
        return sum(float(v[i]) for v, i in zip(self.values, choice, strict=True))

    def _each(self, choice, at: float):
        """Every choice one group away (``at``: the choice's prediction): ``(new choice, value gained,
        its prediction)``."""
        w = self.widths(choice)
        for g, (n, ks, v) in enumerate(zip(self.names, self.options, self.values, strict=True)):
            for i in range(len(ks)):
                if i != choice[g]:
                    ms = at + self.joined.joined_change(w, n, int(ks[i]))
                    yield [*choice[:g], i, *choice[g + 1 :]], float(v[i] - v[choice[g]]), ms

    def repair(self, choice) -> list[int]:
        """Over the budget: the move losing least value per ms saved, until within (or no move saves).
        Within: the move gaining most value that stays within, until none does."""
        choice, at = list(choice), self.ms(choice)
        while at > self.budget:
            saving = [(-gain / (at - ms), c, ms) for c, gain, ms in self._each(choice, at) if ms < at]
            if not saving:
                return choice
            _, choice, at = min(saving, key=lambda t: t[0])
        while True:
            gaining = [(gain, c, ms) for c, gain, ms in self._each(choice, at) if gain > 0 and ms <= self.budget]
            if not gaining:
                return choice
            _, choice, at = max(gaining, key=lambda t: t[0])
