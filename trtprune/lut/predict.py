"""Predicting a plan's latency from a table (paper Eq. 6-7).

predicted = base + sum over groups of (L_g(w_g) - L_g(current)), each term read
off the group's staircase, + the joined-layer correction. In ``network`` mode L_g
is the whole network's latency with only g changed (kept as a share of the network
measured beside it, so drift between batches cancels); in ``block`` mode it is the
latency of the sub-graph g touches: its change as a share of the unpruned block
measured beside it, times that block's share of the network measured beside the
base (the table's ``block_refs``), so every term is in the base's machine state
even when the machine ran faster or slower while the blocks were timed.

The joined-layer correction: a layer that consumes group a and produces group b
costs about c_a x c_b, so two cuts together save less than their sum, by
C (1 - r_a)(1 - r_b) for the layer's cost C. Each group's change is apportioned
to its layers by MACs to estimate C; how much of that over-count this engine
shows (1 for compute-bound engines, near 0 for overhead-bound ones) is one weight,
fitted by least squares to the table's probes (whole networks with every group cut,
timed beside the base). Measured pairs (``--pairs``) replace the estimate for
their two groups with k_ab (A - w_a)(B - w_b).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from trtprune.errors import PlanError
from trtprune.lut.grid import staircase
from trtprune.lut.store import BASE, LutStore, Probe

if TYPE_CHECKING:
    from trtprune.plan import Plan


class LatencyModel:
    """A table loaded in memory: per-group staircases of latency change."""

    def __init__(self, store: LutStore, interactions: bool = True) -> None:
        """``interactions=False``: the plain sum of single-group changes (what a separable solver optimises)."""
        from trtprune.lut.settings import read_settings

        self.meta = store.require_meta()
        self.settings = read_settings(self.meta, f"table {store.path}")
        self.base_ms = store.base_ms()
        curves: dict[str, dict[int, float]] = defaultdict(dict)
        network = self.meta.mode == "network"
        refs = {} if network else store.block_refs()
        for row in store.rows():
            if row.group == BASE:
                continue
            if row.group in refs:  # block mode: a share of the block, times the block in the base's frame
                block_ms, net_ms = refs[row.group]
                change = (row.median_ms / row.ref_ms - 1.0) * block_ms / net_ms * self.base_ms
            else:
                change = self._scaled(row.median_ms - row.ref_ms, row.ref_ms, network)
            curves[row.group][row.width] = change
        for name, width in self.meta.widths.items():
            curves[name].setdefault(width, 0.0)  # the current width costs nothing extra
        self.curves = dict(curves)
        self.pairs = {}
        for p in store.pairs() if interactions else []:
            cut = (self.meta.widths[p.a] - p.wa) * (self.meta.widths[p.b] - p.wb)
            if cut > 0:
                self.pairs[(p.a, p.b)] = self._scaled(p.interaction_ms, p.ref_ms, network) / cut
        self.joins = self._joins() if interactions else []
        self.join_weight = self._join_weight(store.probes()) if self.joins else 0.0

    def _join_weight(self, probes: list[Probe]) -> float:
        """The share of the joined-layer over-count this engine shows, in [0, 1], fitted to the probes.

        Least squares over the probes of (measured - sum of single changes - pair terms)
        against the estimated over-count. Tables without probes: none.
        """
        widths = self.settings.probe_widths
        num = den = 0.0
        for probe in probes:
            if not isinstance(widths.get(probe.name), dict):
                continue
            w = widths[probe.name]
            residual = (probe.share - 1.0) * self.base_ms - self._singles(w) - self._pairs_ms(w)
            joined = self._joined_ms(w)
            num, den = num + residual * joined, den + joined * joined
        return float(min(max(num / den, 0.0), 1.0)) if den > 0 else 0.0

    def _joins(self) -> list[tuple[str, str, float, float]]:
        """``(a, b, share_a, share_b)`` per layer joining groups a and b without a measured pair term.

        ``share_a``: the layer's part of group a's MACs (of every conv/linear a feeds or leaves).
        """
        layers = self.settings.layers
        touched: dict[str, int] = defaultdict(int)
        for j in layers:
            for g in {j.in_group, j.out_group} - {None}:
                touched[g] += j.macs
        joins = []
        for j in layers:
            a, b = j.in_group, j.out_group
            if a is None or b is None or a == b or a not in self.curves or b not in self.curves:
                continue
            if tuple(sorted((a, b))) in self.pairs or not j.macs:
                continue
            joins.append((a, b, j.macs / touched[a], j.macs / touched[b]))
        return joins

    def _scaled(self, change_ms: float, ref_ms: float, network: bool) -> float:
        """A change measured beside a reference, in the table's base milliseconds.

        In network mode the reference is the whole network, so the change is kept as a
        share of it: shared machines drift between sustained and burst speed, and shares
        measured side by side are repeatable where absolute milliseconds are not.
        """
        return change_ms / ref_ms * self.base_ms if network else change_ms

    def delta_ms(self, group: str, width: int) -> float:
        return staircase(self.curves[group], width)

    def predict_widths(self, widths: dict[str, int]) -> float:
        unknown = sorted(set(widths) - set(self.curves))
        if unknown:
            raise PlanError(f"group {unknown[0]!r} is not in the latency table built for {self.meta.model}")
        return self.base_ms + self._singles(widths) + self.interaction_ms(widths)

    def _singles(self, widths: dict[str, int]) -> float:
        return sum(self.delta_ms(g, w) for g, w in widths.items() if w != self.meta.widths.get(g))

    def interaction_ms(self, widths: dict[str, int]) -> float:
        return self._pairs_ms(widths) + self.join_weight * self._joined_ms(widths)

    def _pairs_ms(self, widths: dict[str, int]) -> float:
        full = self.meta.widths
        total = 0.0
        for (a, b), k in self.pairs.items():
            total += k * (full[a] - widths.get(a, full[a])) * (full[b] - widths.get(b, full[b]))
        return total

    def _joined_ms(self, widths: dict[str, int]) -> float:
        full = self.meta.widths
        total = 0.0
        for a, b, share_a, share_b in self.joins:
            wa, wb = widths.get(a, full[a]), widths.get(b, full[b])
            if wa >= full[a] or wb >= full[b]:
                continue
            # the layer's part of each group's change; it costs ~ c_a x c_b, so cut together it saves
            # C (1 - r_a r_b), not C (2 - r_a - r_b): the sum over-counts by C (1 - r_a)(1 - r_b)
            saved_a, saved_b = -share_a * self.delta_ms(a, wa), -share_b * self.delta_ms(b, wb)
            over = 0.5 * (saved_a * (1 - wb / full[b]) + saved_b * (1 - wa / full[a]))
            total += min(max(over, 0.0), max(saved_a, 0.0), max(saved_b, 0.0))
        return total

    def predict(self, plan: Plan) -> float:
        if plan.model != self.meta.model:
            raise PlanError(f"plan is for model {plan.model!r}, the table for {self.meta.model!r}")
        return self.predict_widths({g: len(kept) for g, kept in plan.groups.items()})

    def cost_table(self, group: str) -> dict[int, float]:
        """Latency change at every width 1..current of ``group`` (for the solver)."""
        return {w: self.delta_ms(group, w) for w in range(1, self.meta.widths[group] + 1)}
