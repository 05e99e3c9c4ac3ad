"""What a comparison is asked to do, and how its runs are named and stopped."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from trtprune.core.errors import TrtpruneError, UsageError
from trtprune.core.records import Record
from trtprune.methods.base import parse_method_spec
from trtprune.prune import PruneConfig


@dataclass(frozen=True)
class CompareConfig(Record):
    """Every method spec at every budget, ``seeds`` paired seeds each. ``prune`` is the template every
    run shares (table, model, data, stages, recipe); each run sets its budget ratio, method, seed and
    run directory on it."""

    FORMAT = 2  # format 1 had ``lut`` here and ``prune`` as a dict of the shared PruneConfig fields
    NESTED = {"prune": PruneConfig}

    prune: PruneConfig
    methods: tuple[str, ...] = ("sp-lamp", "halp", "lap", "uniform", "global-l1")
    budgets: tuple[float, ...] = (0.3, 0.5, 0.7)
    seeds: int = 1
    out: str = "engines/compare"

    @property
    def lut(self) -> str:
        return self.prune.lut

    def run_config(self, spec: str, budget: float, seed: int, run_dir: str) -> PruneConfig:
        """The run of method ``spec`` at ``budget`` (a share of the base) with ``seed``, written to ``run_dir``."""
        method, options = parse_method_spec(spec)
        return replace(self.prune, budget_ratio=budget, method=method, method_options=options, seed=seed, out=run_dir)

    @classmethod
    def from_json(cls, obj: Any, source: str | None = None) -> CompareConfig:
        if isinstance(obj, dict) and obj.get("format", 1) < 2:  # the template from ``lut`` and the shared dict
            obj = {k: v for k, v in obj.items() if k not in ("lut", "prune")} | {
                "format": 2,
                "prune": {"format": 2, "lut": obj.get("lut"), **obj.get("prune", {})},
            }
        return super().from_json(obj, source)


PER_RUN = ("budget_ms", "budget_ratio", "out")  # a comparison sets these on each run


def check_config(config: CompareConfig) -> None:
    set_per_run = [k for k in PER_RUN if getattr(config.prune, k) is not None]
    if set_per_run:
        raise UsageError(
            f"compare: {set_per_run[0]!r} is set on each run by the comparison; leave it out of the shared settings"
        )
    for spec in config.methods:
        parse_method_spec(spec)  # unknown names and options fail here, naming the valid ones
    bad = [b for b in config.budgets if not 0 < b < 1]
    if bad:
        raise UsageError(f"budget ratio {bad[0]} must be in (0, 1): a share of the unpruned latency")
    if config.seeds < 1:
        raise UsageError("--seeds must be at least 1")


def run_dir_name(spec: str, budget: float, seed: int) -> str:
    """``sp-lamp:importance=sp-lamp-group`` at 0.5, seed 1 -> ``sp-lamp_importance-sp-lamp-group-b0.5-s1``."""
    return f"{spec.replace(':', '_').replace('=', '-')}-b{budget:g}-s{seed}"


class Stopped(TrtpruneError):
    """:func:`run_compare` reached its ``max_minutes`` before every run had finished; rerun to resume
    (the CLI exits with 3: not a failure, not finished)."""

    exit_code = 3

    def __init__(self, finished: int, total: int, minutes: float) -> None:
        super().__init__(f"stopped after {minutes:.0f} min with {finished} of {total} runs finished; rerun to resume")
        self.finished, self.total = finished, total


REMEASURE_OVER = 0.03  # a run measuring more than this share over its budget is timed once more
