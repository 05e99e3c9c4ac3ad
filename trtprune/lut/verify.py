"""Does the table predict real latency? Random plans, predicted vs measured in the same engine.

The statistics (:func:`relative_error_pct`, :func:`share_error_pct`, :func:`median_p90`) are the
ones ``trtprune lut verify`` reports; ``benchmarks/lut_fidelity.py`` scores its stored
measurements with the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from trtprune.core.progress import TableRows
from trtprune.engine.candidates import prepare
from trtprune.engine.timing import TimingConfig, measure_interleaved
from trtprune.graph.groups import find_groups
from trtprune.lut.build import load_for_lut
from trtprune.lut.frames import FrameShift, Remeasure, frame_shift
from trtprune.lut.grid import allowed_widths, widths_around
from trtprune.lut.predict import LatencyModel
from trtprune.lut.store import LutStore
from trtprune.surgery.apply import prune_copy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyRow:
    widths: dict[str, int]
    predicted_ms: float
    measured_ms: float
    base_now_ms: float
    error_pct: float  # |predicted/base - measured/base_now| / (measured/base_now): shares of the base network
    absolute_error_pct: float  # |predicted - measured| / measured, in raw milliseconds
    no_pairs_error_pct: float  # error_pct of the prediction without pair interactions (sum of single-group changes)
    stage_scales_error_pct: float = 0.0  # error_pct with the stage scales (LatencyModel(stage_scales=True))

    RETIRED = frozenset({"no_stage_scales_error_pct"})  # stored by older trtprune, no longer meaningful

    @property
    def share(self) -> float:
        """The measured latency as a share of the base timed beside it (the paired ratio)."""
        return self.measured_ms / self.base_now_ms

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> VerifyRow:
        """A row as :meth:`to_json` stored it (older rows' retired keys are dropped; others refused)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - names - cls.RETIRED)
        if unknown:
            raise ValueError(f"unknown verify row key(s) {unknown}")
        return cls(**{k: v for k, v in obj.items() if k in names})


@dataclass(frozen=True)
class VerifyResult:
    """The plans measured against the table; ``again``: the same plans measured a second time (the
    floor: how far two measurements of one plan fall apart here); ``cost``: what the table cost."""

    rows: list[VerifyRow]
    base_ms: float
    again: list[VerifyRow] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    frame_shift: FrameShift | None = None  # how far the table's closing frame moved from its opening one
    discarded: list[FrameShift] = field(default_factory=list)  # its measurements measured again: how far each moved

    @property
    def floor_pct(self) -> tuple[float, float]:
        """Median and p90 of |share - share again| / share again (nan without a second measurement)."""
        return floor_pct(self.rows, self.again) if self.again else (float("nan"), float("nan"))

    @property
    def median_error_pct(self) -> float:
        return median_p90(r.error_pct for r in self.rows)[0]

    @property
    def p90_error_pct(self) -> float:
        return median_p90(r.error_pct for r in self.rows)[1]

    @property
    def bias_pct(self) -> float:
        """The median signed share error, in percent: > 0 where the table predicts the plans slower than
        they measured (an error all plans share, such as a regime the table was not built in)."""
        return float(np.median([signed_error_pct(r.predicted_ms / self.base_ms, r.share) for r in self.rows]))

    def regime_moved(self, limit_pct: float = Remeasure.max_shift_pct) -> bool:
        """Whether the base timed beside the plans moved more than ``limit_pct`` from the table's: the
        plans were timed in another regime of the machine than the table (a build's frames are held
        to the same limit)."""
        return abs(self.regime_shift_pct) > limit_pct

    @property
    def regime_shift_pct(self) -> float:
        """How far the base timed beside the plans moved from the table's base (median, percent): the
        machine's regime since the build (shares move with it where the base and the plans respond unlike)."""
        return float(np.median([signed_error_pct(r.base_now_ms, self.base_ms) for r in self.rows]))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"base_ms": self.base_ms, "samples": len(self.rows)}
        for prefix, column in ERROR_COLUMNS.items():
            out[f"{prefix}median_error_pct"], out[f"{prefix}p90_error_pct"] = median_p90(
                getattr(r, column) for r in self.rows
            )
        if self.again:
            out["again_median_error_pct"], out["again_p90_error_pct"] = median_p90(r.error_pct for r in self.again)
            out["floor_median_pct"], out["floor_p90_pct"] = self.floor_pct
        out["bias_pct"], out["regime_shift_pct"] = self.bias_pct, self.regime_shift_pct
        out["cost"] = self.cost
        out["frame_shift"] = self.frame_shift.to_json() if self.frame_shift else None
        out["discarded"] = [m.to_json() for m in self.discarded]
        return {**out, "rows": [r.to_json() for r in self.rows], "again": [r.to_json() for r in self.again]}


# the summaries to_json gives: key prefix -> the VerifyRow error they summarise
ERROR_COLUMNS = {
    "": "error_pct",
    "absolute_": "absolute_error_pct",
    "no_pairs_": "no_pairs_error_pct",
    "stage_scales_": "stage_scales_error_pct",
}


def signed_error_pct(estimate: float, actual: float) -> float:
    """(estimate - actual) / actual, in percent."""
    return 100 * (estimate - actual) / actual


def relative_error_pct(estimate: float, actual: float) -> float:
    """|estimate - actual| / actual, in percent."""
    return abs(signed_error_pct(estimate, actual))


def share_error_pct(latency: LatencyModel, widths: dict[str, int], share: float) -> float:
    """|predicted share - measured share| / measured share, in percent: the prediction as a share of
    the table's base against a plan measured as a share of the base timed beside it."""
    return relative_error_pct(latency.predict_widths(widths) / latency.base_ms, share)


def floor_pct(first: list[VerifyRow], second: list[VerifyRow]) -> tuple[float, float]:
    """The same plans measured twice: |share1 - share2| / share2 in percent, median and p90."""
    return median_p90(relative_error_pct(a.share, b.share) for a, b in zip(first, second, strict=True))


def median_p90(errors_pct: Iterable[float]) -> tuple[float, float]:
    """The median and the 90th percentile of ``errors_pct``: how every error here is summarised."""
    values = np.asarray(list(errors_pct), dtype=np.float64)
    return float(np.median(values)), float(np.percentile(values, 90))


def random_widths(
    model: LatencyModel, rng: np.random.Generator, allowed: dict[str, list[int]], lo: float = 0.3
) -> dict[str, int]:
    """Random per-group widths among ``allowed``, predicted at [lo, 1] x base.

    ``allowed`` is what ``trtprune prune`` may choose (:func:`~trtprune.decide.decision.allowed_widths`
    at the table's step: multiples of the step and every count below it). Engines punish
    other counts (on ONNX Runtime CPU a ResNet-20 at 75% width with odd counts runs slower
    than the unpruned network), and the table measures them only where it refines a jump.
    """
    grids = {g: np.array(sorted(choices)) for g, choices in allowed.items()}
    widths: dict[str, int] = {}
    for _ in range(200):
        widths = widths_around(rng, grids, rng.uniform(0.1, 1.0))
        if lo * model.base_ms <= model.predict_widths(widths) <= model.base_ms:
            return widths
    return widths


def verify(
    lut_path: str,
    samples: int = 20,
    seed: int = 0,
    timing: TimingConfig = TimingConfig(),
    per_batch: int = 4,
    progress=None,
    again: bool = False,
) -> VerifyResult:
    """Measure ``samples`` random plans (whole pruned networks, exported and built) against the table;
    ``again``: then measure them a second time (the floor)."""

    with LutStore(lut_path) as store:
        models = (LatencyModel(store), LatencyModel(store, interactions=False), LatencyModel(store, stage_scales=True))
        cost, moved, discarded = store.cost(), frame_shift(store), store.discarded()
    model = models[0]
    meta = model.meta
    bcfg = model.settings.backend_config
    loaded = load_for_lut(model.settings.build)
    groups = find_groups(loaded.model, loaded.input_shape)
    rng = np.random.default_rng(seed)
    allowed = {g.name: [int(w) for w in allowed_widths(g, g.channels, meta.step)] for g in groups.groups}
    plans = [random_widths(model, rng, allowed) for _ in range(samples)]
    base_runner = prepare(loaded.model, loaded.input_shape, meta.backend, bcfg)

    def measured(widths: dict[str, int]):
        return prepare(prune_copy(loaded.model, groups, widths), loaded.input_shape, meta.backend, bcfg)

    runs = [_measure(plans, measured, base_runner, models, timing, per_batch, progress) for _ in range(1 + again)]
    base_runner.close()
    return VerifyResult(runs[0], model.base_ms, runs[1] if again else [], cost, moved, discarded)


def _measure(plans, prepare_plan, base_runner, models, timing, per_batch, progress) -> list[VerifyRow]:
    """Each plan timed beside the base (``per_batch`` plans per interleaved batch), scored by the
    table's default rule, its sum of single changes and its stage scales (``models``)."""
    model, singles, scaled = models
    rows: list[VerifyRow] = []
    for start in range(0, len(plans), per_batch):
        chunk = plans[start : start + per_batch]
        runners = {str(i): prepare_plan(w) for i, w in enumerate(chunk)}
        t = measure_interleaved(
            {"base": base_runner.timed, **{k: r.timed for k, r in runners.items()}}, timing, reference="base"
        )
        for i, widths in enumerate(chunk):
            base_now, share = t["base"].median_ms, t[str(i)].ratio  # paired with the base, round by round
            pred, meas = model.predict_widths(widths), share * base_now
            err, err_singles, err_scaled = (share_error_pct(m, widths, share) for m in (model, singles, scaled))
            rows.append(
                VerifyRow(widths, pred, meas, base_now, err, relative_error_pct(pred, meas), err_singles, err_scaled)
            )
        for r in runners.values():
            r.close()
        if progress:
            progress(TableRows(len(rows), total=len(plans)))
    return rows
