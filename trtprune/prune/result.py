"""The typed result of a prune run: what report.json holds, what ``compare`` and the CLI read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trtprune.core.records import Record
from trtprune.data.preprocessing import Preprocessing
from trtprune.engine.measurement import Measurement
from trtprune.methods.description import MethodDescription
from trtprune.prune.config import PruneConfig
from trtprune.prune.latency_parts import LatencyParts
from trtprune.prune.stage import StageRecord

if TYPE_CHECKING:
    from trtprune.prune.deploy import Deployment
    from trtprune.prune.inputs import PruneInputs


@dataclass(frozen=True)
class FinalFinetune(Record):
    """The fine-tune after physical pruning: its epochs and top-1 in PyTorch on the test split."""

    epochs: int
    top1_torch: float


@dataclass(frozen=True)
class TaskMetrics(Record):
    """The task's metrics of model.onnx (``pruned``) and base.onnx (``base``), ONNX Runtime on the
    test split; ``metric`` names the headline one (``label`` as reports print it). For a detector,
    whole vs network latency of both (:mod:`trtprune.prune.latency_parts`)."""

    NESTED = {"latency_parts": LatencyParts}

    task: str
    metric: str
    label: str
    pruned: dict[str, float]
    base: dict[str, float]
    latency_parts: LatencyParts | None = None


@dataclass(frozen=True)
class PruneResult(Record):
    """A finished run. Latencies: ``measured`` holds the base and pruned models timed side by side
    (their median, p90, spread and the environment); ``measured_share`` is pruned / base, and
    ``*_in_table_ms`` that share in the table's milliseconds, the unit of ``budget_ms``."""

    # format 1: ``measured`` a plain dict ({} where nothing was measured), ``final_finetune`` a dict;
    # format 2: ``method``, ``preprocessing`` and ``task_metrics`` plain dicts (read as their records)
    FORMAT = 3
    NESTED = {
        "method": MethodDescription,
        "preprocessing": Preprocessing,
        "stages": StageRecord,
        "config": PruneConfig,
        "measured": Measurement,
        "final_finetune": FinalFinetune,
        "task_metrics": TaskMetrics,
    }

    model: str
    method: MethodDescription
    method_s: float
    checkpoint: str | None
    table: str
    backend: str
    precision: str
    input_shape: list[int]
    preprocessing: Preprocessing
    budget_ms: float
    table_base_ms: float
    predicted_ms: float
    measured: Measurement | None  # None: a backend that runs modules (nothing exported was timed)
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
    matching: tuple[tuple[tuple[float, float, float], ...], ...]  # per stage, (goal, predicted, measured) per round
    final_finetune: FinalFinetune
    engine_files: dict[str, str]
    config: PruneConfig
    wall_s: float
    remeasure_table_s: float = 0.0
    run_dir: str | None = None  # where the run was written
    task_metrics: TaskMetrics | None = None  # None in older reports

    @property
    def base_ms(self) -> float | None:
        return self.measured.base.median_ms if self.measured else None

    @property
    def pruned_ms(self) -> float | None:
        return self.measured.pruned.median_ms if self.measured else None

    @classmethod
    def from_json(cls, obj: Any, source: str | None = None) -> PruneResult:
        if isinstance(obj, dict):
            obj = {**obj, "matching": _traces(obj.get("matching", ()))}
            if obj.get("measured") == {}:  # format 1 wrote nothing measured as {}
                obj["measured"] = None
        return super().from_json(obj, source)


def _traces(matching: Any) -> tuple[tuple[tuple[float, float, float], ...], ...]:
    return tuple(tuple(tuple(float(x) for x in rnd) for rnd in stage) for stage in matching)


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
    share = measured.share if measured else None
    noise = measured.noise_share * run.latency.base_ms if measured else 0.0
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
        preprocessing=run.spec.preprocessing,
        budget_ms=run.budget_ms,
        table_base_ms=run.latency.base_ms,
        predicted_ms=stages[-1].predicted_ms,
        measured=measured,
        measured_share=share,
        measured_in_table_ms=share * run.latency.base_ms if share else None,
        speedup=1 / share if share else None,
        meets_budget=bool(share and share * run.latency.base_ms <= run.budget_ms + 3 * noise),
        top1=deployed.top1,
        base_top1=deployed.base_top1,
        top1_source="ONNX Runtime (CPU) on the test split of model.onnx / base.onnx",  # task_metrics names the metric
        params=deployed.params,
        base_params=deployed.base_params,
        flops=deployed.flops,
        base_flops=deployed.base_flops,
        widths=dict(stages[-1].widths),
        base_widths=dict(meta.widths),
        stages=tuple(stages),
        matching=_traces(matching),
        final_finetune=FinalFinetune(deployed.final["epochs"], deployed.final["top1"]),
        engine_files=deployed.engine_files,
        config=run.config,
        wall_s=wall_s,
        remeasure_table_s=table_s,
        run_dir=run_dir,
        task_metrics=TaskMetrics(
            task=run.task.name,
            metric=run.task.metric,
            label=run.task.metric_label,
            pruned=dict(deployed.metrics),
            base=dict(deployed.base_metrics),
            latency_parts=deployed.parts,
        ),
    )


def load_result(run_dir) -> PruneResult:
    """The result of a finished run directory (its report.json, any format this trtprune reads)."""
    import json
    from dataclasses import replace
    from pathlib import Path

    path = Path(run_dir) / "report.json"
    return replace(PruneResult.from_json(json.loads(path.read_text()), f"report {path}"), run_dir=str(run_dir))
