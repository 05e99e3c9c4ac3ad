"""Predicting a plan's latency from a table (paper Eq. 6-7).

predicted = base + sum over groups of (L_g(w_g) - L_g(current)), each term read
off the group's staircase. In ``network`` mode L_g is the whole network's
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

    def __init__(self, store: LutStore) -> None:
        self.meta = store.require_meta()
        self.base_ms = store.base_ms()
        curves: dict[str, dict[int, float]] = defaultdict(dict)
        for row in store.rows():
            if row.group != BASE:
                curves[row.group][row.width] = row.delta_ms
        for name, width in self.meta.widths.items():
            curves[name].setdefault(width, 0.0)  # the current width costs nothing extra
        self.curves = dict(curves)

    def delta_ms(self, group: str, width: int) -> float:
        return staircase(self.curves[group], width)

    def predict_widths(self, widths: dict[str, int]) -> float:
        unknown = sorted(set(widths) - set(self.curves))
        if unknown:
            raise PlanError(f"group {unknown[0]!r} is not in the latency table built for {self.meta.model}")
        return self.base_ms + sum(self.delta_ms(g, w) for g, w in widths.items() if w != self.meta.widths.get(g))

    def predict(self, plan: Plan) -> float:
        if plan.model != self.meta.model:
            raise PlanError(f"plan is for model {plan.model!r}, the table for {self.meta.model!r}")
        return self.predict_widths({g: len(kept) for g, kept in plan.groups.items()})

    def cost_table(self, group: str) -> dict[int, float]:
        """Latency change at every width 1..current of ``group`` (for the solver)."""
        return {w: self.delta_ms(group, w) for w in range(1, self.meta.widths[group] + 1)}
