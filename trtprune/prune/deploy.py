"""Step 3 of a prune run: the model pruned physically and fine-tuned once more (every rank), then
(rank 0) exported, built into the deployable engine, evaluated in ONNX Runtime and measured
beside the unpruned model."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtprune.backends import get_backend
from trtprune.engine.bench import measure_onnx_side_by_side
from trtprune.engine.calib import load_calibration_set
from trtprune.engine.export import export_onnx, onnx_metadata
from trtprune.engine.measurement import Measurement
from trtprune.engine.precision import export_with_precision
from trtprune.graph.groups import find_groups
from trtprune.graph.layer_shapes import count_macs
from trtprune.lut.settings import measuring_backend, read_settings
from trtprune.models.checkpoint import save_checkpoint
from trtprune.prune.journal import JournalEntry
from trtprune.prune.latency_parts import LatencyParts, measure_parts
from trtprune.prune.tuning import finetune
from trtprune.surgery.apply import apply_plan
from trtprune.train.ddp import rank

if TYPE_CHECKING:
    from torch import nn

    from trtprune.lut.store import LutMeta
    from trtprune.prune.inputs import PruneInputs
    from trtprune.prune.journal import Journal
    from trtprune.surgery.plan import Plan


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    final: dict[str, Any]  # the final fine-tune: {"epochs", "top1"} (torch, on the test split)
    engine_files: dict[str, str]
    metrics: dict[str, float]  # model.onnx in ONNX Runtime on the test split: the task's metrics (top1; map, map_50)
    base_metrics: dict[str, float]  # base.onnx, the same way
    measured: Measurement | None  # base and pruned timed side by side (None: a backend that runs modules)
    params: int
    base_params: int
    flops: int
    base_flops: int
    metric: str = "top1"  # the task's headline metric, a key of ``metrics``
    parts: LatencyParts | None = None  # whole vs network latency of base and pruned (a detector's)

    @property
    def top1(self) -> float:
        """The task's headline metric of model.onnx (top-1; a detector's mAP@[.5:.95])."""
        return self.metrics[self.metric]

    @property
    def base_top1(self) -> float:
        return self.base_metrics[self.metric]


def prune_and_finetune(
    run: PruneInputs, model: nn.Module, base_model: nn.Module, plan: Plan, journal: Journal
) -> dict[str, Any]:
    """Prune ``model`` physically by ``plan`` and fine-tune it once more (every rank; resumed from the
    journal: a finished final fine-tune is loaded, not redone); returns ``{"epochs", "top1"}``."""

    apply_plan(find_groups(model, run.input_shape), plan, run.model_name)
    done = journal.find("final")
    if done:
        model.load_state_dict(journal.load_checkpoint(done[0].checkpoint)["model"])
        return done[0].data
    tuned = finetune(run, model, base_model, 0, journal)
    checkpoint = journal.save_checkpoint("final.pt", {"model": model.state_dict()})
    journal.add(JournalEntry("final", data=tuned, checkpoint=checkpoint))
    log.info("rank %d: final weights %s", rank(), weights_digest(model))
    return tuned


def weights_digest(model: nn.Module) -> str:
    """A checksum of every parameter and buffer: equal on every rank of a data-parallel run."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def deploy(run: PruneInputs, model: nn.Module, base_model: nn.Module, plan: Plan, final: dict, out: Path) -> Deployment:
    """Everything the run directory ``out`` holds besides the report (rank 0)."""

    shape, task = run.input_shape, run.task
    plan.save(out / "plan.json")
    pre = run.spec.preprocessing.to_json()
    save_checkpoint(
        out / "model.pt",
        model,
        model_name=run.model_name,
        input_shape=shape,
        num_classes=run.loaded.num_classes,
        preprocessing=pre,
        plan=plan.to_json(),
        metrics={"top1_torch": final["top1"]},
    )
    export_onnx(model, shape, out / "model.onnx", metadata=onnx_metadata(run.model_name, shape, pre, plan))
    export_onnx(base_model, shape, out / "base.onnx", metadata=onnx_metadata(run.model_name, shape, pre))
    return Deployment(
        final=final,
        engine_files=build_engine(run.latency.meta, out, run.config.calib, model, shape),
        metrics=task.evaluate_onnx(out / "model.onnx", run.test_set, None),
        base_metrics=task.evaluate_onnx(out / "base.onnx", run.test_set, None),
        measured=measure_final(
            run.latency.meta,
            out / "base.onnx",
            out / "model.onnx",
            run.budget_ms / run.latency.base_ms,
            run.config.match.calls,
        ),
        params=sum(p.numel() for p in model.parameters()),
        base_params=sum(p.numel() for p in base_model.parameters()),
        flops=count_macs(model, shape),
        base_flops=count_macs(base_model, shape),
        metric=task.metric,
        parts=measure_parts(
            run.latency.meta,
            task,
            {"base": (base_model, out / "base.onnx"), "pruned": (model, out / "model.onnx")},
            shape,
        ),
    )


def build_engine(
    meta: LutMeta, out: Path, calib: str | None, model: nn.Module, shape: tuple[int, ...]
) -> dict[str, str]:
    """The deployable engine of the table's backend, at the table's precision (an fp16 or QDQ-int8
    ONNX first where the precision asks for one; int8 calibrated on ``calib``)."""

    config = read_settings(meta).backend_config
    files = {}
    onnx_path = out / "model.onnx"
    if config.precision != "fp32":
        calibration = None
        if config.precision == "int8" and calib:
            calibration = load_calibration_set(calib)
        onnx_path = export_with_precision(
            model, shape, out / f"model.{config.precision}.onnx", config.precision, calibration
        )
        files[config.precision] = onnx_path.name
    return {**files, **get_backend(meta.backend).deploy(onnx_path, out, config)}


def measure_final(
    meta: LutMeta, base_onnx: Path, pruned_onnx: Path, budget_share: float, calls: int = 1
) -> Measurement | None:
    """The pruned model beside the base, in the table's engine. With ``calls`` > 1, in that many
    harness calls (fresh sessions each): the share is their mean (one call's share of a small model
    or a detector moves by several percent from call to call on a shared machine), the timings those
    of the median call. In one call (a format-1 match policy's rule), a first measurement over the
    budget share is repeated twice and the measurement with the median share kept."""

    first = _side_by_side(meta, base_onnx, pruned_onnx)
    if first is None or (calls == 1 and first.share <= budget_share):
        return first
    if calls == 1:
        log.info("final share %.4f over the budget share %.4f: measured twice more", first.share, budget_share)
        runs = [first, *(_side_by_side(meta, base_onnx, pruned_onnx) for _ in range(2))]
        return replace(_median(runs), shares=tuple(m.share for m in runs))
    runs = [first, *(_side_by_side(meta, base_onnx, pruned_onnx) for _ in range(calls - 1))]
    return replace(_median(runs), call_shares=tuple(m.share for m in runs))


def _median(runs: list[Measurement]) -> Measurement:
    """The measurement with the median share (the upper one of an even count)."""
    return sorted(runs, key=lambda m: m.share)[len(runs) // 2]


def _side_by_side(meta: LutMeta, base_onnx: Path, pruned_onnx: Path) -> Measurement | None:
    measured = measure_onnx_side_by_side(
        *measuring_backend(meta), {"base": base_onnx, "pruned": pruned_onnx}, reference="base"
    )
    return None if measured is None else Measurement.of(*measured)
