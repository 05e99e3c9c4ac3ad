"""HALP (Shen et al.), the seed baseline, on the shared pipeline.

- Importance: Taylor on batch norms, |g_gamma * gamma + g_beta * beta| (HALP Eq. 27),
  summed over the coupled layers of a group, computed per mini-batch and averaged
  over the batches between pruning steps.
- Latency: HALP's per-layer table (:mod:`trtprune.lut.conv_table`), keyed by
  (batch, c_in, c_out, feature map, kernel, stride, groups), measured in the same
  engine with the neighbouring layer's width held at its current value; a network is
  the sum of its convs and linears (batch norms, activations, adds, pooling untimed).
  An entry is timed with the table's harness, but it stops once the entry's standard error
  is under ``entry_se`` of the base latency (after 8 rounds at least): the entries are summed,
  so such errors stay far under the engine's noise, and a detector's thousands of entries
  (a new set every stage: the neighbours' widths are in the key) take minutes, not hours.
- Decision: channels of a layer are sorted by importance and cut into blocks on the
  table's grid (the channel blocks HALP groups neurons into); each block is an item
  of the augmented 0-1 knapsack in which a block may be kept only if the more
  important blocks of its layer are (:func:`trtprune.decide.solver.zero_one_knapsack`).
- Schedule: exponentially decaying latency targets, base * (budget / base)^(s / k):
  each step removes the same fraction of what is left, so the steps shrink.
- A layer pruned away entirely: refused. The most important block of every layer is
  kept outside the knapsack. HALP allows a layer to vanish; here that is not a
  shape Torch-Pruning can cut (a group of zero channels), a vanished residual group
  would disconnect the network, and a vanished branch would need a graph rewrite
  (bypass) that changes the model family being compared. Every method here keeps at
  least one block per group, so the comparison stays on the same set of networks.

The goal is asked of HALP's table as the same share of its own base latency as the
goal is of the group table's base; the shared loop then measures the choice in the
engine and tightens the goal if it is over, as for every method.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from trtprune.core.errors import InfeasibleBudget
from trtprune.decide.decision import Decision
from trtprune.decide.solver import zero_one_knapsack
from trtprune.lut.conv_table import ConvTable, layer_keys
from trtprune.methods.base import METHODS, Method, MethodContext, StageState, allowed_widths_of
from trtprune.methods.description import MethodDescription
from trtprune.surgery.plan import Plan, _expand_local, ranked_blocks

log = logging.getLogger(__name__)


def exponential_targets(base_ms: float, budget_ms: float, stages: int) -> list[float]:
    """HALP's schedule: target_s = base * (budget / base)^(s / k)."""
    r = budget_ms / base_ms
    return [base_ms * r ** (s / stages) for s in range(1, stages + 1)]


@METHODS.register("halp")
class Halp(Method):
    name = "halp"
    importance = "taylor-bn"

    def __init__(self, batches: int = 10, table: str | None = None, entry_se: float = 1e-4) -> None:
        self.taylor_batches = batches
        self.table_path = table
        self.entry_se = float(entry_se)
        self.table = None  # the per-layer table (setup)
        self.keys: dict[str, Any] = {}  # layer -> its ConvKey in the unpruned model
        self.full_ms = 0.0  # the unpruned model's summed layers
        self.predicted_halp_ms = 0.0  # the last decision, by HALP's own table

    def schedule(self, base_ms: float, budget_ms: float, stages: int) -> list[float]:
        return exponential_targets(base_ms, budget_ms, stages)

    def setup(self, context: MethodContext) -> None:

        settings = context.latency.settings
        path = Path(self.table_path) if self.table_path else Path(context.lut_path).with_name("halp-convs.db")
        timing = replace(settings.timing, min_rounds=8, target_se_ms=self.entry_se * context.latency.base_ms)
        self.table = ConvTable(path, context.latency.meta.backend, settings.backend_config, timing)
        self.keys = layer_keys(context.model, context.input_shape)
        ms = self.table.lookup(self.keys.values())
        self.full_ms = sum(ms[k] for k in self.keys.values())  # every layer, identical ones included
        log.info("halp: %d layers, summed base latency %.4f ms", len(self.keys), self.full_ms)

    # latency --------------------------------------------------------------------
    def _roles(self, state: StageState) -> dict[str, dict[str, str]]:
        """layer -> {'in': group feeding it, 'out': group it produces} (prunable groups only)."""
        roles: dict[str, dict[str, str]] = {}
        for g in state.groups.groups:
            for m in g.members:
                if m.layer in self.keys:
                    roles.setdefault(m.layer, {})[m.role] = g.name
        return roles

    def _key(self, layer: str, roles: dict[str, str], widths: dict[str, int]) -> Any:
        base = self.keys[layer]
        c_in = widths[roles["in"]] if "in" in roles else base.c_in
        c_out = widths[roles["out"]] if "out" in roles else base.c_out
        return base.resized(c_in, c_out)

    def group_costs(self, state: StageState, ks_by_group: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        """HALP's latency now (summed layers) and, per group and width, the change of its layers'
        sum with that group at that width and every neighbour at its current width."""
        roles = self._roles(state)
        layers_of: dict[str, list[str]] = {}
        for layer, r in roles.items():
            for name in set(r.values()):
                layers_of.setdefault(name, []).append(layer)
        wanted = {layer: self._key(layer, roles.get(layer, {}), state.current) for layer in self.keys}
        for name, ks in ks_by_group.items():
            for layer in layers_of.get(name, []):
                for k in ks:
                    wanted[(layer, name, int(k))] = self._key(layer, roles[layer], {**state.current, name: int(k)})
        ms = self.table.lookup(wanted.values())
        now = sum(ms[wanted[layer]] for layer in self.keys)
        costs = {}
        for name, ks in ks_by_group.items():
            layers = layers_of.get(name, [])
            costs[name] = np.array(
                [sum(ms[wanted[(layer, name, int(k))]] - ms[wanted[layer]] for layer in layers) for k in ks]
            )
        return now, costs

    def decide(self, state: StageState, goal_ms: float):

        groups = state.groups.groups
        ks_by = allowed_widths_of(state)
        now, costs = self.group_costs(state, ks_by)
        goal = self.full_ms * goal_ms / state.latency.base_ms  # the same share of HALP's own base
        values, item_costs, orders = [], [], []
        mandatory = 0.0
        for g in groups:
            ks = ks_by[g.name]
            per_block, order = ranked_blocks(g, state.scores[g.name])  # descending importance
            prefix = np.concatenate([[0.0], np.cumsum(per_block[order])])[ks // g.partitions]
            values.append(np.diff(prefix))  # block j: the channels between widths ks[j] and ks[j+1]
            item_costs.append(np.diff(costs[g.name]))
            orders.append(order)
            mandatory += costs[g.name][0]  # the most important block is always kept
        room = goal - now - mandatory
        if room < 0:
            raise InfeasibleBudget(
                f"HALP's table: {now + mandatory:.4f} ms at the smallest widths > goal {goal:.4f} ms",
                (now + mandatory) / self.full_ms * state.latency.base_ms,
            )
        taken = zero_one_knapsack(values, item_costs, room)
        plan = Plan(model=state.model_name, input_shape=tuple(state.groups.example_input.shape))
        widths, value, predicted = {}, 0.0, now
        for g, order, vals, n in zip(groups, orders, values, taken, strict=True):
            ks = ks_by[g.name]
            widths[g.name] = int(ks[n])
            value += float(vals[:n].sum())
            predicted += float(costs[g.name][n])
            if ks[n] < g.channels:
                plan.groups[g.name] = _expand_local(g, order[: ks[n] // g.partitions])
        self.predicted_halp_ms = predicted
        return Decision(plan, widths, predicted / self.full_ms * state.latency.base_ms, value)

    def describe(self) -> MethodDescription:
        return MethodDescription(
            method=self.name,
            importance=f"taylor-bn averaged over {self.taylor_batches} batches",
            latency=f"per-layer table, summed (each entry to a standard error of {self.entry_se:g} of the base)",
            solver="prefix-constrained 0-1 knapsack over channel blocks",
            schedule="exponential",
            empty_layers="refused (the top block of every group is kept)",
            layers_measured=getattr(getattr(self, "table", None), "measured", 0),
            table_base_ms=getattr(self, "full_ms", None),
        )
