"""The exact knapsack solvers against brute force and an integer-programming solver."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trtprune.core.errors import InfeasibleBudget, TrtpruneError
from trtprune.decide.solver import group_knapsack, zero_one_knapsack


def _brute(values, costs, budget):
    best, arg = -np.inf, None
    for choice in itertools.product(*[range(len(v)) for v in values]):
        cost = sum(costs[g][i] for g, i in enumerate(choice))
        value = sum(values[g][i] for g, i in enumerate(choice))
        if cost <= budget + 1e-12 and value > best:
            best, arg = value, choice
    return best, arg


def _instance(rng, groups=4, options=5, negative=True, integer=False):
    values = [
        np.sort(rng.random(options)) if not integer else rng.integers(0, 5, options).astype(float)
        for _ in range(groups)
    ]
    lo = -0.3 if negative else 0.0
    costs = [
        rng.uniform(lo, 1.0, options) if not integer else rng.integers(-2 if negative else 0, 6, options).astype(float)
        for _ in range(groups)
    ]
    budget = float(rng.uniform(0.5, 2.5)) if not integer else float(rng.integers(2, 12))
    return values, costs, budget


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    values, costs, budget = _instance(rng, integer=seed % 2 == 0)  # integer instances have many ties
    best, _ = _brute(values, costs, budget)
    if best == -np.inf:
        with pytest.raises(InfeasibleBudget):
            group_knapsack(values, costs, budget)
        return
    picked = group_knapsack(values, costs, budget, resolution=1e-4 if seed % 2 else 0.5)
    assert sum(costs[g][i] for g, i in enumerate(picked)) <= budget + 1e-9  # never over budget
    got = sum(values[g][i] for g, i in enumerate(picked))
    if seed % 2 == 0:
        assert got == pytest.approx(best)  # integer costs: exact
    else:
        # costs rounded up at 1e-4: optimal among choices not within 4e-4 of the budget edge
        margin, _ = _brute(values, costs, budget - 4e-4)
        assert got >= margin - 1e-12


def test_matches_integer_programming():
    milp = pytest.importorskip("scipy.optimize").milp
    from scipy.optimize import Bounds, LinearConstraint

    rng = np.random.default_rng(7)
    for _ in range(5):
        groups, options = 12, 40
        values = [np.cumsum(rng.random(options)) for _ in range(groups)]
        costs = [np.round(np.cumsum(rng.uniform(-0.01, 0.05, options)), 4) for _ in range(groups)]
        budget = float(sum(c.min() for c in costs) + 0.4 * sum(c.max() - c.min() for c in costs))
        n = groups * options
        a_eq = np.zeros((groups, n))
        for g in range(groups):
            a_eq[g, g * options : (g + 1) * options] = 1
        res = milp(
            c=-np.concatenate(values),
            constraints=[
                LinearConstraint(a_eq, 1, 1),
                LinearConstraint(np.concatenate(costs)[None, :], -np.inf, budget),
            ],
            integrality=np.ones(n),
            bounds=Bounds(0, 1),
        )
        picked = group_knapsack(values, costs, budget, resolution=1e-5)
        got = sum(values[g][i] for g, i in enumerate(picked))
        assert sum(costs[g][i] for g, i in enumerate(picked)) <= budget + 1e-9
        assert got == pytest.approx(-res.fun, rel=1e-3)


def test_infeasible_names_the_smallest_cost():
    costs = [np.array([0.5, 0.7]), np.array([0.25, 1.0])]
    with pytest.raises(InfeasibleBudget, match="smallest achievable cost is 0.75") as info:
        group_knapsack([np.ones(2), np.ones(2)], costs, 0.5)
    assert isinstance(info.value, TrtpruneError)


def test_negative_costs_can_pay_for_others():
    values = [np.array([0.0, 10.0]), np.array([0.0, 1.0])]
    costs = [np.array([0.0, 2.0]), np.array([0.0, -1.5])]  # option 1 of group 2 is faster
    assert group_knapsack(values, costs, 0.5) == [1, 1]


@pytest.mark.parametrize("seed", range(20))
def test_zero_one_prefix_constraint(seed):
    rng = np.random.default_rng(100 + seed)
    values = [rng.random(4) for _ in range(3)]
    costs = [rng.integers(1, 4, 4).astype(float) for _ in range(3)]
    budget = float(rng.integers(3, 12))
    taken = zero_one_knapsack(values, costs, budget, resolution=0.5)
    best = -1.0
    for counts in itertools.product(range(5), repeat=3):  # only prefixes are legal
        cost = sum(costs[g][:k].sum() for g, k in enumerate(counts))
        if cost <= budget:
            best = max(best, sum(values[g][:k].sum() for g, k in enumerate(counts)))
    assert sum(values[g][:k].sum() for g, k in enumerate(taken)) == pytest.approx(best)
    assert sum(costs[g][:k].sum() for g, k in enumerate(taken)) <= budget
