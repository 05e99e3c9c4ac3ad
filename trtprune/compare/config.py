"""What a comparison is asked to do, and how its runs are named and stopped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trtprune.core.errors import TrtpruneError, UsageError
from trtprune.core.records import Record
from trtprune.methods.base import parse_method_spec
from trtprune.prune import PruneConfig


@dataclass(frozen=True)
class CompareConfig(Record):
    """Every method spec at every budget, ``seeds`` paired seeds each, sharing ``prune``'s settings."""

    lut: str
    methods: tuple[str, ...] = ("sp-lamp", "halp", "lap", "uniform", "global-l1")
    budgets: tuple[float, ...] = (0.3, 0.5, 0.7)
    seeds: int = 1
    out: str = "engines/compare"
    prune: dict[str, Any] = field(default_factory=dict)  # shared PruneConfig fields (data, stages, limit_train...)


def check_config(config: CompareConfig) -> None:
    from dataclasses import fields

    per_run = {"lut", "budget_ms", "budget_ratio", "method", "method_options", "seed", "out"}
    shared = {f.name for f in fields(PruneConfig)} - per_run
    unknown = sorted(set(config.prune) - shared)
    if unknown:
        raise UsageError(
            f"compare: {unknown[0]!r} is not a shared prune setting; use one of: {', '.join(sorted(shared))}"
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
