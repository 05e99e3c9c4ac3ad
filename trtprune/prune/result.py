"""The typed result of a prune run: what report.json holds, what ``compare`` and the CLI read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trtprune.core.records import Record
from trtprune.prune.config import PruneConfig
from trtprune.prune.stage import StageRecord

if TYPE_CHECKING:
    from trtprune.prune.deploy import Deployment
    from trtprune.prune.inputs import PruneInputs


@dataclass(frozen=True)
class PruneResult(Record):
    """A finished run. Latencies: ``measured`` holds the base and pruned models timed side by side
    (their median, p90, spread and the environment); ``measured_share`` is pruned / base, and
    ``*_in_table_ms`` that share in the table's milliseconds, the unit of ``budget_ms``."""

    NESTED = {"stages": StageRecord, "config": PruneConfig}

    model: str
    method: dict[str, Any]  # the method's description (name, importance, settings, costs)
    method_s: float
    checkpoint: str | None
    table: str
    backend: str
    precision: str
    input_shape: list[int]
    preprocessing: dict[str, Any]
    budget_ms: float
    table_base_ms: float
    predicted_ms: float
    measured: dict[str, Any]
    measured_share: float | None
    measured_in_table_ms: float | None
    speedup: float | None
    meets_budget: bool
    top1: float
    base_top1: float
    top1_source: str
    params: int
    base_params: int
    flops: int
    base_flops: int
    widths: dict[str, int]
    base_widths: dict[str, int]
    stages: tuple[StageRecord, ...]
    matching: list[Any]  # per stage, the matching loop's (goal, predicted, measured) per round
    final_finetune: dict[str, Any]
    engine_files: dict[str, str]
    config: PruneConfig
    wall_s: float
    remeasure_table_s: float = 0.0
    run_dir: str | None = None  # where the run was written
    # the task's metrics of model.onnx and base.onnx ("top1" holds the headline one) and, for a
    # detector, whole vs network latency of both (trtprune.prune.latency_parts); None in older reports
    task_metrics: dict[str, Any] | None = None

    @property
    def base_ms(self) -> float | None:
        return self.measured["base"]["median_ms"] if self.measured else None

    @property
    def pruned_ms(self) -> float | None:
        return self.measured["pruned"]["median_ms"] if self.measured else None


def assemble(
    run: PruneInputs,
    stages: list[StageRecord],
    matching: list[Any],
    deployed: Deployment,
    method_s: float,
    table_s: float,
    wall_s: float,
    run_dir: str,
) -> PruneResult:
    measured = deployed.measured
    share = paired_share(measured)
    meta = run.latency.meta
    return PruneResult(
        model=run.model_name,
        method=run.method.describe(),
        method_s=method_s,
        checkpoint=run.checkpoint,
        table=str(run.config.lut),
        backend=meta.backend,
        precision=meta.precision,
        input_shape=list(meta.input_shape),
        preprocessing=run.spec.preprocessing.to_json(),
        budget_ms=run.budget_ms,
        table_base_ms=run.latency.base_ms,
        predicted_ms=stages[-1].predicted_ms,
        measured=measured,
        measured_share=share,
        measured_in_table_ms=share * run.latency.base_ms if share else None,
        speedup=1 / share if share else None,
        meets_budget=bool(share and share * run.latency.base_ms <= run.budget_ms + 3 * _noise_ms(measured)),
        top1=deployed.top1,
        base_top1=deployed.base_top1,
        top1_source=f"{run.task.metric_label}: ONNX Runtime (CPU) on the test split of model.onnx / base.onnx",
        params=deployed.params,
        base_params=deployed.base_params,
        flops=deployed.flops,
        base_flops=deployed.base_flops,
        widths=dict(stages[-1].widths),
        base_widths=dict(meta.widths),
        stages=tuple(stages),
        matching=matching,
        final_finetune={"epochs": deployed.final["epochs"], "top1_torch": deployed.final["top1"]},
        engine_files=deployed.engine_files,
        config=run.config,
        wall_s=wall_s,
        remeasure_table_s=table_s,
        run_dir=run_dir,
        task_metrics={
            "task": run.task.name,
            "metric": run.task.metric,
            "label": run.task.metric_label,
            "pruned": deployed.metrics,
            "base": deployed.base_metrics,
            "latency_parts": deployed.parts,
        },
    )


def paired_share(measured: dict[str, Any]) -> float | None:
    """Pruned / base latency: the paired ratio where the harness gave one, else the ratio of medians."""
    if not measured:
        return None
    pruned = measured["pruned"]
    return pruned.get("ratio") or pruned["median_ms"] / measured["base"]["median_ms"]


def _noise_ms(measured: dict[str, Any]) -> float:
    """The harness's stated noise on the pruned model's median: half its inter-quartile range."""
    if not measured:
        return 0.0
    t = measured["pruned"]
    return 0.5 * t["spread"] * t["median_ms"] / max(measured["base"]["median_ms"], 1e-12)


def load_result(run_dir) -> PruneResult:
    """The result of a finished run directory (its report.json, any format this trtprune reads)."""
    import json
    from dataclasses import replace
    from pathlib import Path

    path = Path(run_dir) / "report.json"
    return replace(PruneResult.from_json(json.loads(path.read_text()), f"report {path}"), run_dir=str(run_dir))
