"""``trtprune prune`` end to end: inputs -> k stages -> deploy -> result, in a run directory that
appears whole or not at all."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from trtprune.prune.config import PruneConfig
    from trtprune.prune.inputs import PruneInputs
    from trtprune.prune.result import PruneResult

log = logging.getLogger(__name__)


def run_prune(config: PruneConfig, progress: Callable[[dict[str, Any]], None] | None = None) -> PruneResult:
    """Run the pipeline; returns its result (``result.run_dir`` is the run directory).

    ``progress`` is called after every stage with ``{"stage", "stages", "target_ms", "top1"}``
    and once more with ``{"stage": "deploy"}`` before the final fine-tune and export.
    """
    from trtprune.atomic import atomic_dir
    from trtprune.prune.inputs import load_inputs
    from trtprune.report import write_prune_report

    start = time.perf_counter()
    run = load_inputs(config)
    run_dir = Path(config.out or Path("engines") / run.model_name / f"prune-{time.strftime('%Y%m%d-%H%M%S')}")
    with atomic_dir(run_dir) as tmp:
        result = _pipeline(run, tmp, str(run_dir), start, progress or (lambda event: None))
        write_prune_report(result, tmp)
    return result


def _pipeline(run: PruneInputs, out: Path, run_dir: str, start: float, progress) -> PruneResult:
    from trtprune.prune.deploy import deploy
    from trtprune.prune.result import assemble
    from trtprune.prune.stage import StageInputs, run_stage
    from trtprune.prune.timer import CandidateTimer

    model = run.loaded.model
    base_model = copy.deepcopy(model)
    workdir = out / "tables"
    workdir.mkdir()
    method = run.method
    t0 = time.perf_counter()
    method.setup(run.method_context(base_model))
    method_s, table_s = time.perf_counter() - t0, 0.0
    timer = CandidateTimer(run.latency.meta, base_model, run.input_shape)
    k = max(1, run.config.stages)
    records, matching, plan, mask = [], [], None, None
    for s, target in enumerate(method.schedule(run.latency.base_ms, run.budget_ms, k), start=1):
        outcome = run_stage(
            StageInputs(
                run=run,
                method=method,
                timer=timer,
                model=model,
                base_model=base_model,
                stage=s,
                stages=k,
                target_ms=target,
                plan=plan,
                current=records[-1].widths if records else None,
                current_ms=records[-1].measured_ms if records else None,
                mask=mask,
                workdir=workdir,
            )
        )
        records.append(outcome.record)
        matching.append(outcome.trace)
        plan, mask = outcome.plan, outcome.mask
        method_s += outcome.method_s
        table_s += outcome.table_s
        progress({"stage": s, "stages": k, "target_ms": target, "top1": outcome.record.top1})
    mask.remove()
    timer.close()
    progress({"stage": "deploy"})
    deployed = deploy(run, model, base_model, plan, out, k)
    return assemble(run, records, matching, deployed, method_s, table_s, time.perf_counter() - start, run_dir)
