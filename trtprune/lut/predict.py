"""Predicting a plan's latency from a table (paper Eq. 6-7).

predicted = base + sum over groups of (L_g(w_g) - L_g(current)), each term read
off the group's staircase, + sum over joined pairs (a, b) of k_ab (A - w_a)(B - w_b):
a layer between two groups costs about c_in x c_out, so two cuts save less than
their sum; k_ab comes from one measurement of both cut together. In ``network`` mode L_g is the whole network's
latency with only g changed; in ``block`` mode it is the latency of the
sub-graph g touches. Both are stored as differences against a reference
measured in the same interleaved batch, which cancels slow machine drift.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from trtprune.errors import PlanError
from trtprune.lut.grid import staircase
from trtprune.lut.store import BASE, LutStore

if TYPE_CHECKING:
    from trtprune.plan import Plan


class LatencyModel:
    """A table loaded in memory: per-group staircases of latency change."""

    def __init__(self, store: LutStore, interactions: bool = True) -> None:
        self.meta = store.require_meta()
        self.base_ms = store.base_ms()
        curves: dict[str, dict[int, float]] = defaultdict(dict)
        network = self.meta.mode == "network"
        for row in store.rows():
            if row.group != BASE:
                curves[row.group][row.width] = self._scaled(row.median_ms - row.ref_ms, row.ref_ms, network)
        for name, width in self.meta.widths.items():
            curves[name].setdefault(width, 0.0)  # the current width costs nothing extra
        self.curves = dict(curves)
        self.pairs = {}
        for p in store.pairs() if interactions else []:
            cut = (self.meta.widths[p.a] - p.wa) * (self.meta.widths[p.b] - p.wb)
            if cut > 0:
                self.pairs[(p.a, p.b)] = self._scaled(p.interaction_ms, p.ref_ms, network) / cut

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
        singles = sum(self.delta_ms(g, w) for g, w in widths.items() if w != self.meta.widths.get(g))
        return self.base_ms + singles + self.interaction_ms(widths)

    def interaction_ms(self, widths: dict[str, int]) -> float:
        full = self.meta.widths
        total = 0.0
        for (a, b), k in self.pairs.items():
            total += k * (full[a] - widths.get(a, full[a])) * (full[b] - widths.get(b, full[b]))
        return total

    def predict(self, plan: Plan) -> float:
        if plan.model != self.meta.model:
            raise PlanError(f"plan is for model {plan.model!r}, the table for {self.meta.model!r}")
        return self.predict_widths({g: len(kept) for g, kept in plan.groups.items()})

    def cost_table(self, group: str) -> dict[int, float]:
        """Latency change at every width 1..current of ``group`` (for the solver)."""
        return {w: self.delta_ms(group, w) for w in range(1, self.meta.widths[group] + 1)}
