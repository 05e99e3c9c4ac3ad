"""Predicting a plan's latency from a table (paper Eq. 6-7).

predicted = base + sum over groups of (L_g(w_g) - L_g(current)), each term read
off the group's measured widths (between them: the table's rule, :mod:`trtprune.lut.grid`),
+ the joined-layer correction. In ``network`` mode L_g
is the whole network's latency with only g changed (kept as a share of the network
measured beside it, so drift between batches cancels); in ``block`` mode it is the
latency of the sub-graph g touches: its change as a share of the unpruned block
measured beside it, times that block's share of the network measured beside the
base (the table's ``block_refs``; since LutConfig format 4 the mean of that share in the
opening and the closing frame, :mod:`trtprune.lut.frames`), so every term is in the base's
machine state even when the machine ran faster or slower while the blocks were timed.

The joined-layer correction: a layer that consumes group a and produces group b
costs about c_a x c_b, so two cuts together save less than their sum, by
C (1 - r_a)(1 - r_b) for the layer's cost C. Each group's change is apportioned
to its layers by MACs to estimate C; how much of that over-count this engine
shows (1 for compute-bound engines, near 0 for overhead-bound ones) is one weight,
fitted by least squares to the table's probes (whole networks with every group cut,
timed beside the base: uniform cuts and, since format 3, designed plans cut unevenly).
Measured pairs (``--pairs``) replace the estimate for their two groups with k_ab (A - w_a)(B - w_b).

The stage scales: a block timed alone does not show everything its cut saves in the whole
network (on small inputs, where per-op overheads, layout reorders and cache dominate, a
stage's cuts save up to 15% more than its blocks' changes add up to). Each group's change is
multiplied by its stage's scale k_s (a stage: the groups whose maps have one spatial size),
fitted with the joined-layer weight by bounded least squares to all probes: the designed probes
(tables since LutConfig format 3: whole networks with every stage cut by random amounts) and the
stage probes (opt-in: whole networks with only one stage cut). Tables with designed probes use the
scales by default; older tables keep k_s = 1 unless asked (``stage_scales=True``): fitted to uniform
cuts alone, the scales helped in 4 of 8 benchmarked runs (benchmarks/results/lut_fidelity-format2.md);
fitted to designed plans they lowered the median and p90 error in 5 of 6 ONNX Runtime cases each
(not EfficientNet-Lite0's median nor MobileNet-V2's p90), and ResNet-18/50 @224 met their targets
only with them (lut_fidelity.md's unscaled columns).

predicted = base + sum_g k_stage(g) L_g(w_g) + pairs + weight x joined over-count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.core.errors import PlanError
from trtprune.lut.frames import mean_shares, table_frames
from trtprune.lut.grid import BETWEEN
from trtprune.lut.settings import read_settings
from trtprune.lut.store import BASE, LutStore, Probe

if TYPE_CHECKING:
    from trtprune.lut.layers import LayerJoin
    from trtprune.surgery.plan import Plan


# how strongly a stage's scale is held at 1, as a share of its probes' sum of squared changes
SCALE_PRIOR = 0.05


class LatencyModel:
    """A table loaded in memory: per-group curves of latency change."""

    def __init__(self, store: LutStore, interactions: bool = True, stage_scales: bool | None = None) -> None:
        """``interactions=False``: the sum of single-group changes, each with its stage's scale, without
        the pair and joined-layer terms (what a separable solver optimises; fitted the same way).
        ``stage_scales``: each group's change times its stage's scale, fitted to the probes; by default
        (None) where the table has designed probes, which cut every stage unevenly, and not in older
        tables, whose rule is scales 1 and the weight fitted to the probes that cut every stage."""

        self.meta = store.require_meta()
        self.settings = read_settings(self.meta, f"table {store.path}")
        if stage_scales is None:
            stage_scales = self.settings.build.designs > 0
        self.base_ms = store.base_ms()
        curves: dict[str, dict[int, float]] = defaultdict(dict)
        network = self.meta.mode == "network"
        frames = table_frames(store)  # the opening frame and, since LutConfig format 4, the closing one
        blocks = {} if network else mean_shares(frames, "blocks")
        for row in store.rows():
            if row.group == BASE:
                continue
            if row.group in blocks:  # block mode: a share of the block, times the block's share of the network
                change = (row.median_ms / row.ref_ms - 1.0) * blocks[row.group] * self.base_ms
            else:
                change = self._scaled(row.median_ms - row.ref_ms, row.ref_ms, network)
            curves[row.group][row.width] = change
        for name, width in self.meta.widths.items():
            curves[name].setdefault(width, 0.0)  # the current width costs nothing extra
        self.curves = dict(curves)
        self.pairs = {}
        for p in store.pairs():
            cut = (self.meta.widths[p.a] - p.wa) * (self.meta.widths[p.b] - p.wb)
            if cut > 0:
                self.pairs[(p.a, p.b)] = self._scaled(p.interaction_ms, p.ref_ms, network) / cut
        self.joins = _joins(self.settings.layers, self.curves, self.pairs)
        self.joins_of = defaultdict(list)  # group -> the joins and measured pairs it is one side of
        for join in self.joins:
            for g in set(join[:2]):
                self.joins_of[g].append(join)
        self.pairs_of = defaultdict(list)
        for ab, k in self.pairs.items():
            for g in ab:
                self.pairs_of[g].append((ab, k))
        self._between = BETWEEN[self.settings.build.between]  # how widths between measured ones are read
        self.stage_of = dict(self.settings.resolutions)
        probes = [Probe(n, share * self.base_ms, self.base_ms) for n, share in mean_shares(frames, "probes").items()]
        self.stage_scales, self.join_weight = self._fit(probes, stage_scales)
        self.interactions = interactions

    def _fit(self, probes: list[Probe], scaled_stages: bool = True) -> tuple[dict[str, float], float]:
        """The stage scales and the joined-layer weight, within the table's bounds (LutConfig's
        ``scale_bounds``, ``weight_bounds``), fitted to the probes.

        Each probe's measured change, less its pair terms, is modelled as the sum over stages of
        k_s x that stage's single changes plus the weight x the estimated over-count; one bounded
        least-squares fit over all probes (exact, by an active set on the bounds), with a prior
        pulling each k_s to 1 (``SCALE_PRIOR`` x the stage's own sum of squares): where the
        over-count grows with the cut as the changes do, the weight and the scales can trade
        against each other, and the prior keeps a stage at the measured rows unless its probes say
        otherwise. Tables without probes: scales 1, weight 0; without stage probes (format 2, or
        ``scaled_stages=False``): the weight alone, fitted to the probes that cut every stage.
        """
        stages = sorted(set(self.stage_of.values())) if len(set(self.stage_of.values())) > 1 else []
        fits = []  # (stage cut alone or None, y, {stage: single changes}, over-count)
        for probe in probes:
            w = self.settings.probe_widths.get(probe.name)
            if not isinstance(w, dict):
                continue
            cut = {g: v for g, v in w.items() if v != self.meta.widths.get(g)}
            by_stage: dict[str | None, float] = defaultdict(float)
            for g, v in cut.items():
                by_stage[self.stage_of.get(g) if stages else None] += self._raw(g, v)
            y = (probe.share - 1.0) * self.base_ms - by_stage.pop(None, 0.0) - self._pairs_ms(w)
            alone = next(iter(by_stage)) if len(by_stage) == 1 else None
            fits.append((alone, y, dict(by_stage), self._joined_ms(w) if self.joins else 0.0))
        if not scaled_stages:  # every stage at scale 1: its changes are part of what the weight explains
            stages, fits = [], [(None, y - sum(c.values()), {}, j) for alone, y, c, j in fits if alone is None]
        if not fits:
            return dict.fromkeys(stages, 1.0), 0.0
        # columns: the weight's over-count, then each stage's single changes; the prior rows hold each
        # stage at 1 with SCALE_PRIOR x that stage's own sum of squares
        a = np.array([[j, *(c.get(st, 0.0) for st in stages)] for _, _, c, j in fits], dtype=np.float64)
        y = np.array([f[1] for f in fits], dtype=np.float64)
        prior = np.array([0.0, *(SCALE_PRIOR * float(np.sum(a[:, i + 1] ** 2)) for i in range(len(stages)))])
        start = np.array([0.0] + [1.0] * len(stages))
        (k_lo, k_hi), (w_lo, w_hi) = self.settings.build.scale_bounds, self.settings.build.weight_bounds
        lo, hi = np.array([w_lo] + [k_lo] * len(stages)), np.array([w_hi] + [k_hi] * len(stages))
        x = _bounded_least_squares(a, y, prior, start, lo, hi)
        return {st: float(k) for st, k in zip(stages, x[1:], strict=True)}, float(x[0])

    def _scaled(self, change_ms: float, ref_ms: float, network: bool) -> float:
        """A change measured beside a reference, in the table's base milliseconds.

        In network mode the reference is the whole network, so the change is kept as a
        share of it: shared machines drift between sustained and burst speed, and shares
        measured side by side are repeatable where absolute milliseconds are not.
        """
        return change_ms / ref_ms * self.base_ms if network else change_ms

    def _raw(self, group: str, width: int) -> float:
        """The group's change as its rows measured it (before its stage's scale)."""
        if width == self.meta.widths.get(group):
            return 0.0
        return self._between(self.curves[group], width, self.meta.step)

    def scale(self, group: str) -> float:
        """The group's stage scale (1 where the table has none)."""
        return self.stage_scales.get(self.stage_of.get(group, ""), 1.0)

    def delta_ms(self, group: str, width: int) -> float:
        """The group's term in a prediction: its measured change times its stage's scale."""
        return self.scale(group) * self._raw(group, width)

    def predict_widths(self, widths: dict[str, int]) -> float:
        unknown = sorted(set(widths) - set(self.curves))
        if unknown:
            raise PlanError(f"group {unknown[0]!r} is not in the latency table built for {self.meta.model}")
        return self.base_ms + self._singles(widths) + self.interaction_ms(widths)

    def _singles(self, widths: dict[str, int]) -> float:
        return sum(self.delta_ms(g, w) for g, w in widths.items() if w != self.meta.widths.get(g))

    def interaction_ms(self, widths: dict[str, int]) -> float:
        """The pair terms and the joined-layer correction (0 with ``interactions=False``)."""
        return self.correction_ms(widths) if self.interactions else 0.0

    def correction_ms(self, widths: dict[str, int]) -> float:
        """The pair terms and the joined-layer correction, whatever ``interactions`` says."""
        return self._pairs_ms(widths) + self.join_weight * self._joined_ms(widths)

    def joined_ms(self, widths: dict[str, int]) -> float:
        """The full prediction (singles, pairs and the joined-layer correction) of any instance: what
        a solver that linearises the correction around its last solution reads."""
        return self.base_ms + self._singles(widths) + self.correction_ms(widths)

    def joined_change(self, widths: dict[str, int], group: str, width: int) -> float:
        """``joined_ms`` of ``widths`` with ``group`` at ``width``, less ``joined_ms(widths)``: from the
        terms that touch ``group`` only (what a relinearising solver reads for every option)."""
        other = {**widths, group: width}
        full = self.meta.widths
        pairs = self.pairs_of.get(group, [])
        joins = self.joins_of.get(group, [])
        return (
            self.delta_ms(group, width)
            - self.delta_ms(group, widths.get(group, full[group]))
            + self._pairs_ms(other, pairs)
            - self._pairs_ms(widths, pairs)
            + self.join_weight * (self._joined_ms(other, joins) - self._joined_ms(widths, joins))
        )

    def _pairs_ms(self, widths: dict[str, int], pairs=None) -> float:
        full = self.meta.widths
        total = 0.0
        for (a, b), k in self.pairs.items() if pairs is None else pairs:
            total += k * (full[a] - widths.get(a, full[a])) * (full[b] - widths.get(b, full[b]))
        return total

    def _joined_ms(self, widths: dict[str, int], joins=None) -> float:
        full = self.meta.widths
        total = 0.0
        for a, b, share_a, share_b in self.joins if joins is None else joins:
            wa, wb = widths.get(a, full[a]), widths.get(b, full[b])
            if wa >= full[a] or wb >= full[b]:
                continue
            # the layer's part of each group's change; it costs ~ c_a x c_b, so cut together it saves
            # C (1 - r_a r_b), not C (2 - r_a - r_b): the sum over-counts by C (1 - r_a)(1 - r_b)
            saved_a, saved_b = -share_a * self._raw(a, wa), -share_b * self._raw(b, wb)
            over = 0.5 * (saved_a * (1 - wb / full[b]) + saved_b * (1 - wa / full[a]))
            total += min(max(over, 0.0), max(saved_a, 0.0), max(saved_b, 0.0))
        return total

    def terms(self, widths: dict[str, int]) -> list[tuple[str, float]]:
        """The prediction's stored, measured terms: ``(name, ms)`` per group changed (its row's
        change times its stage's scale), then the pair terms and the joined-layer correction;
        ``base_ms`` plus their sum is :meth:`predict_widths`."""
        out = [(g, self.delta_ms(g, w)) for g, w in widths.items() if w != self.meta.widths.get(g)]
        if self.interactions:
            out += [("pairs", self._pairs_ms(widths)), ("joined layers", self.join_weight * self._joined_ms(widths))]
        return out

    def predict(self, plan: Plan) -> float:
        if plan.model != self.meta.model:
            raise PlanError(f"plan is for model {plan.model!r}, the table for {self.meta.model!r}")
        return self.predict_widths({g: len(kept) for g, kept in plan.groups.items()})

    def cost_table(self, group: str) -> dict[int, float]:
        """Latency change at every width 1..current of ``group`` (for the solver)."""
        return {w: self.delta_ms(group, w) for w in range(1, self.meta.widths[group] + 1)}


def _bounded_least_squares(
    a: np.ndarray, y: np.ndarray, prior: np.ndarray, start: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """argmin |a x - y|^2 + sum_i prior_i (x_i - start_i)^2 with lo <= x <= hi, by an active set: solve
    for the free unknowns, fix those out of bounds at their bound, solve again. An unknown no row
    informs (a zero column without a prior) stays at ``start``."""
    x = start.astype(np.float64).copy()
    free = (np.abs(a).sum(axis=0) > 0) | (prior > 0)
    for _ in range(a.shape[1] + 1):
        if not free.any():
            break
        cols = np.flatnonzero(free)
        rows = np.vstack([a[:, cols], np.diag(np.sqrt(prior[cols]))])
        rhs = np.concatenate([y - a[:, ~free] @ x[~free], np.sqrt(prior[cols]) * start[cols]])
        x[cols] = np.linalg.lstsq(rows, rhs, rcond=None)[0]
        out = free & ((x < lo) | (x > hi))
        if not out.any():
            break
        x = np.clip(x, lo, hi)
        free &= ~out
    return np.clip(x, lo, hi)


def _joins(
    layers: list[LayerJoin], curves: Mapping[str, Any], pairs: Mapping[tuple[str, str], Any]
) -> list[tuple[str, str, float, float]]:
    """``(a, b, share_a, share_b)`` per layer joining groups a and b without a measured pair term.

    ``share_a``: the layer's part of group a's MACs (of every conv/linear a feeds or leaves).
    """
    touched: dict[str, int] = defaultdict(int)
    for j in layers:
        for g in {j.in_group, j.out_group} - {None}:
            touched[g] += j.macs
    joins = []
    for j in layers:
        a, b = j.in_group, j.out_group
        if a is None or b is None or a == b or a not in curves or b not in curves:
            continue
        if tuple(sorted((a, b))) in pairs or not j.macs:
            continue
        joins.append((a, b, j.macs / touched[a], j.macs / touched[b]))
    return joins
