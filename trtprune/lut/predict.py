"""Predicting a plan's latency from a table (paper Eq. 6-7).

predicted = base + sum over groups of (L_g(w_g) - L_g(current)), each term read
off the group's staircase, + sum over joined pairs (a, b) of k_ab (A - w_a)(B - w_b)
(measured pairs), or in block mode with ``joined``, for layers joining a and b without a
measured pair, the over-count C (1 - r_a)(1 - r_b) estimated from each group's change
apportioned by MACs:
a layer between two groups costs about c_in x c_out, so two cuts save less than
their sum; k_ab comes from one measurement of both cut together. In ``network`` mode L_g is the whole network's
latency with only g changed; in ``block`` mode it is the latency of the
sub-graph g touches. Both are stored as differences against a reference
measured in the same interleaved batch, which cancels slow machine drift.
Network-mode changes are read as shares of the network measured beside them;
block-mode changes are milliseconds, or (``calibrated``) shares of the unpruned block
measured beside them times that block's milliseconds measured beside the base
network (the table's ``block_refs``), so every term is in the base's machine state.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from trtprune.errors import PlanError
from trtprune.lut.grid import staircase
from trtprune.lut.store import BASE, PROBE, LutStore

if TYPE_CHECKING:
    from trtprune.plan import Plan


class LatencyModel:
    """A table loaded in memory: per-group staircases of latency change."""

    def __init__(
        self, store: LutStore, interactions: bool = True, calibrated: bool = False, joined: bool = False
    ) -> None:
        """``calibrated`` and ``joined`` (block mode, opt-in: neither helped both benchmarked
        models, benchmarks/results/lut_fidelity-*.md) read block changes in the base's machine
        state and add the probe-weighted c_a x c_b over-count of joined layers."""
        self.meta = store.require_meta()
        self.base_ms = store.base_ms()
        curves: dict[str, dict[int, float]] = defaultdict(dict)
        network = self.meta.mode == "network"
        refs = store.block_refs() if calibrated and not network else {}
        for row in store.rows():
            if row.group == BASE:
                continue
            change = self._scaled(row.median_ms - row.ref_ms, row.ref_ms, network)
            if (
                row.group in refs and row.group != PROBE
            ):  # block mode: as a share of the block, in the base's milliseconds
                block_ms, net_ms = refs[row.group]
                change = (row.median_ms - row.ref_ms) / row.ref_ms * block_ms * self.base_ms / net_ms
            curves[row.group][row.width] = change
        for name, width in self.meta.widths.items():
            curves[name].setdefault(width, 0.0)  # the current width costs nothing extra
        self.curves = dict(curves)
        self.pairs = {}
        for p in store.pairs() if interactions else []:
            cut = (self.meta.widths[p.a] - p.wa) * (self.meta.widths[p.b] - p.wb)
            if cut > 0:
                self.pairs[(p.a, p.b)] = self._scaled(p.interaction_ms, p.ref_ms, network) / cut
        self.joins = self._joins() if joined and interactions and not network else []
        self.join_weight = self._join_weight(store) if self.joins else 0.0

    def _join_weight(self, store: LutStore) -> float:
        """How much of the c_a x c_b over-count this engine shows, in [0, 1], from the probe.

        The probe (every group near half width, timed beside the base) tells a
        compute-bound engine (ResNet-18 at 224: the full over-count) from an
        overhead-bound one (ResNet-20 at 28: close to none). Tables without it: none.
        """
        probe, refs = self.meta.config.get("probe_widths"), store.block_refs()
        if not probe or PROBE not in refs:
            return 0.0
        probe_ms, net_ms = refs[PROBE]
        measured = probe_ms / net_ms * self.base_ms
        singles = self.base_ms + sum(self.delta_ms(g, w) for g, w in probe.items() if w != self.meta.widths.get(g))
        joined = self._joined_ms(probe)
        return float(min(max((measured - singles) / joined, 0.0), 1.0)) if joined > 0 else 0.0

    def _joins(self) -> list[tuple[str, str, float, float]]:
        """``(a, b, share_a, share_b)`` per layer joining groups a and b without a measured pair term.

        ``share_a``: the layer's part of group a's MACs (of every conv/linear a feeds or leaves).
        """
        layers = self.meta.config.get("layers", [])
        touched: dict[str, int] = defaultdict(int)
        for j in layers:
            for g in {j["in"], j["out"]} - {None}:
                touched[g] += j["macs"]
        joins = []
        for j in layers:
            a, b = j["in"], j["out"]
            if a is None or b is None or a == b or a not in self.curves or b not in self.curves:
                continue
            if tuple(sorted((a, b))) in self.pairs or not j["macs"]:
                continue
            joins.append((a, b, j["macs"] / touched[a], j["macs"] / touched[b]))
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
        singles = sum(self.delta_ms(g, w) for g, w in widths.items() if w != self.meta.widths.get(g))
        return self.base_ms + singles + self.interaction_ms(widths)

    def interaction_ms(self, widths: dict[str, int]) -> float:
        full = self.meta.widths
        total = 0.0
        for (a, b), k in self.pairs.items():
            total += k * (full[a] - widths.get(a, full[a])) * (full[b] - widths.get(b, full[b]))
        return total + self.join_weight * self._joined_ms(widths)

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
