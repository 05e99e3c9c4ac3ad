"""Exact knapsack solvers (numpy only).

``group_knapsack``: choose exactly one option per group, maximise total value with
total cost <= budget (paper Eq. 8-10, Algorithm 1). Costs may be negative (removing
filters can make a network slower). Costs are scaled to integers (Appendix E) at a
resolution that keeps the rounding error under 0.1% of the budget, and rounded *up*,
so a chosen solution never exceeds the budget in real costs. The dynamic programme is
vectorised over capacity: one numpy reduction per group, no Python loop over capacity.

``zero_one_knapsack``: HALP's augmented 0-1 knapsack, in which an item (a channel
block) may be taken only if the items before it in its layer are taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trtprune.core.errors import InfeasibleBudget

MAX_CAPACITY = 2_000_000


def default_resolution(budget: float, spans: Sequence[float], groups: int) -> float:
    """Cost unit keeping the total rounding error (<= one unit per group) under 0.1% of the budget."""
    scale = max(abs(budget), max(spans, default=0.0), 1e-12)
    return 1e-3 * scale / max(groups, 1)


def group_knapsack(
    values: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    budget: float,
    resolution: float | None = None,
) -> list[int]:
    """Index of the chosen option in every group."""
    if len(values) != len(costs):
        raise ValueError("values and costs need one array per group")
    vals = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    cost = [np.asarray(c, dtype=np.float64).ravel() for c in costs]
    if any(len(v) != len(c) or len(v) == 0 for v, c in zip(vals, cost, strict=True)):
        raise ValueError("every group needs at least one option, with as many values as costs")
    floor = [float(c.min()) for c in cost]
    min_total = sum(floor)
    if min_total > budget + 1e-12 * max(1.0, abs(budget)):
        raise InfeasibleBudget(
            f"no choice fits the budget {budget:.6g}: the smallest achievable cost is {min_total:.6g}"
        )
    spans = [float(c.max() - f) for c, f in zip(cost, floor, strict=True)]
    slack = budget - min_total  # capacity left once every group takes its cheapest option
    unit = resolution or default_resolution(budget, spans + [slack], len(cost))
    capacity = int(np.floor(slack / unit + 1e-9))
    if capacity > MAX_CAPACITY:
        unit = slack / MAX_CAPACITY
        capacity = MAX_CAPACITY
    # relative integer costs, rounded up (never under-estimate a cost)
    icost = [np.ceil((c - f) / unit - 1e-9).astype(np.int64) for c, f in zip(cost, floor, strict=True)]
    rows = [np.zeros(capacity + 1)]  # rows[g][c]: best value of the first g groups at relative cost <= c
    options = []
    for v, ic in zip(vals, icost, strict=True):
        opts = _dominant(v, ic, capacity)
        rows.append(_add_group(rows[-1], v, ic, opts))
        options.append(opts)
    picked = []
    c = capacity
    for g in range(len(vals) - 1, -1, -1):  # the first option (in dominance order) that reaches the row's value
        v, ic, opts = vals[g], icost[g], options[g]
        fits = opts[ic[opts] <= c]
        reach = rows[g][c - ic[fits]] + v[fits]
        i = int(fits[np.flatnonzero(reach == rows[g + 1][c])[0]])
        picked.append(i)
        c -= int(ic[i])
    return picked[::-1]


def _add_group(best: np.ndarray, v: np.ndarray, ic: np.ndarray, opts: np.ndarray) -> np.ndarray:
    """One DP step: new[c] = max over options i of best[c - cost_i] + value_i.

    Two in-place passes per option over one buffer, so memory stays at a few rows whatever
    the options; which option reached each value is recovered when backtracking.
    """
    width = len(best)
    new = np.full(width, -np.inf)
    buf = np.empty(width)
    for i in opts:
        k = int(ic[i])
        n = width - k
        np.add(best[:n], v[i], out=buf[:n])
        np.maximum(new[k:], buf[:n], out=new[k:])
    return new


def _dominant(v: np.ndarray, ic: np.ndarray, capacity: int) -> np.ndarray:
    """The options within capacity that no other option beats (cost <= and value >=).

    A dominated option is never needed for an optimum; on ties the lowest index stays.
    """
    idx = np.flatnonzero(ic <= capacity)
    order = np.lexsort((idx, -v[idx], ic[idx]))  # by cost, then value descending, then index
    idx = idx[order]
    running = np.maximum.accumulate(v[idx])
    keep = np.ones(len(idx), dtype=bool)
    keep[1:] = v[idx][1:] > running[:-1]  # strictly better than every cheaper (or equal-cost) option
    return idx[keep]


def zero_one_knapsack(
    values: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    budget: float,
    resolution: float | None = None,
) -> list[int]:
    """HALP's augmented 0-1 knapsack: per layer, items in importance order; item j may be
    taken only if items 0..j-1 are. Returns how many items of each layer are taken.

    The prefix constraint makes each layer's feasible sets its prefixes, so this is solved
    exactly as a group knapsack over prefix sums (taking none is allowed, as in HALP).
    """
    prefix_values, prefix_costs = [], []
    for v, c in zip(values, costs, strict=True):
        prefix_values.append(np.concatenate([[0.0], np.cumsum(np.asarray(v, dtype=np.float64))]))
        prefix_costs.append(np.concatenate([[0.0], np.cumsum(np.asarray(c, dtype=np.float64))]))
    return group_knapsack(prefix_values, prefix_costs, budget, resolution)
