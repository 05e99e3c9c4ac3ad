"""Group-knapsack solver speed, memory and optimality on ResNet-50's real groups.

ResNet-50 (torchvision, 1x3x224x224) has 37 channel groups of 64-2048 channels; every
group gets one option per channel count (1..C), valued by SP-LAMP prefix sums of its
(randomly initialised) weights. Two cost models, both stand-ins (what is measured here is
the solver, not latency): ``stair``, a staircase (latency change proportional to the
group's share, constant within blocks of 8 channels, with noise, some negative), where
many options are dominated; and ``rising``, strictly rising costs (linear in the width
plus a strictly increasing jitter), where no option is dominated, so every group keeps
all of its options (2048 for the widest). Reference: scipy's MILP (HiGHS) on the same
instance. Peak memory is the solver's own allocations (tracemalloc). Prints and saves a
Markdown table and JSON.

    python benchmarks/solver.py
"""

from __future__ import annotations

import json
import time

import numpy as np
from _results import RESULTS, save  # benchmarks/_results.py, beside this script


def instance(seed: int = 0):
    from trtprune.decide.importance import score_groups
    from trtprune.graph.groups import find_groups
    from trtprune.models import build_model

    shape = (1, 3, 224, 224)
    groups = find_groups(build_model("resnet50", shape, pretrained=False), shape)
    scores = score_groups(groups, "sp-lamp")
    rng = np.random.default_rng(seed)
    values, costs = [], []
    for g in groups.groups:
        ordered = np.sort(scores[g.name])[::-1]
        values.append(np.cumsum(ordered))  # keep top-k, k = 1..C
        k = np.arange(1, g.channels + 1)
        stair = np.ceil(k / 8) * 8 / g.channels  # padded width share
        weight = rng.uniform(0.01, 0.05)  # this group's share of the base latency (ms)
        costs.append(weight * (stair - 1) + rng.normal(0, 0.0005, g.channels))
    return groups, values, costs


def rising(costs, seed: int = 1):
    """Strictly rising costs over the same span as ``costs``: no option is dominated."""
    rng = np.random.default_rng(seed)
    out = []
    for c in costs:
        k = np.arange(1, len(c) + 1)
        span = float(c.max() - c.min())
        out.append(span * (k / len(c) - 1) + np.cumsum(rng.uniform(1e-6, 1e-5, len(c))))
    return out


def milp_reference(values, costs, budget):
    from scipy.optimize import Bounds, LinearConstraint, milp

    sizes = [len(v) for v in values]
    n = sum(sizes)
    a_eq = np.zeros((len(values), n))
    start = 0
    for g, size in enumerate(sizes):
        a_eq[g, start : start + size] = 1
        start += size
    t0 = time.perf_counter()
    res = milp(
        c=-np.concatenate(values),
        constraints=[LinearConstraint(a_eq, 1, 1), LinearConstraint(np.concatenate(costs)[None, :], -np.inf, budget)],
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
    )
    return -res.fun, time.perf_counter() - t0


def main() -> None:
    import tracemalloc

    from trtprune.decide.solver import group_knapsack
    from trtprune.report.markdown import markdown_table

    groups, values, stair = instance()
    rows = []
    for name, costs in (("stair", stair), ("rising", rising(stair))):
        span = sum(float(c.max() - c.min()) for c in costs)
        for frac in (0.3, 0.5, 0.7):
            budget = sum(float(c.min()) for c in costs) + frac * span
            tracemalloc.start()
            t0 = time.perf_counter()
            picked = group_knapsack(values, costs, budget)
            solve_s = time.perf_counter() - t0
            peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            value = sum(values[g][i] for g, i in enumerate(picked))
            cost = sum(costs[g][i] for g, i in enumerate(picked))
            ref, ref_s = milp_reference(values, costs, budget)
            rows.append(
                {
                    "costs": name,
                    "budget_ms": round(budget, 5),
                    "solve_s": round(solve_s, 3),
                    "peak_mb": round(peak_mb, 1),
                    "value": round(value, 4),
                    "milp_value": round(ref, 4),
                    "gap_pct": round(100 * (ref - value) / ref, 4),
                    "cost_ms": round(cost, 5),
                    "within_budget": bool(cost <= budget),
                    "milp_s": round(ref_s, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    text = (
        "\n".join(
            [
                f"# Group knapsack on ResNet-50's {len(values)} groups ({sum(len(v) for v in values)} options)",
                "",
                "Command: `python benchmarks/solver.py` (stair: many dominated options; rising: none, every width kept)",
                "",
                markdown_table(rows),
                "",
                "gap_pct: how far below the MILP optimum the solver's value is (costs rounded up at the default",
                "resolution, 0.1% of the budget, so the solver never exceeds the budget; the MILP uses exact costs).",
            ]
        )
        + "\n"
    )
    save(RESULTS / "solver", text, rows)


if __name__ == "__main__":
    main()
