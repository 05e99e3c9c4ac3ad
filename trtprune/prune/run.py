"""``trtprune prune`` end to end: inputs -> k stages -> deploy -> result.

Work in progress lives in ``RUN.partial/`` with a journal (:mod:`trtprune.prune.journal`):
a killed run, rerun with the same command, continues from its last finished step. The run
directory ``RUN`` appears whole, and only at the end. Under ``torchrun`` every rank runs
this; rank 0 decides, times and writes, every rank fine-tunes its shard.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtprune.core.progress import Deploying, StageDone
from trtprune.graph.groups import find_groups
from trtprune.prune.deploy import deploy, prune_and_finetune
from trtprune.prune.inputs import load_inputs
from trtprune.prune.journal import Journal, partial_dir
from trtprune.prune.result import assemble
from trtprune.prune.stage import StageDecision, StageInputs, StageOutcome, StageRecord, run_stage
from trtprune.prune.timer import CandidateTimer
from trtprune.report.prune import write_prune_report
from trtprune.surgery.apply import apply_masks
from trtprune.surgery.plan import Plan
from trtprune.train.ddp import barrier, from_main, is_main_process, process_group
from trtprune.train.loop import resolve_device

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

    from trtprune.prune.config import PruneConfig
    from trtprune.prune.inputs import PruneInputs
    from trtprune.prune.journal import Journal
    from trtprune.prune.result import PruneResult

log = logging.getLogger(__name__)
WORK = "resume"  # RUN.partial/resume/: the journal and checkpoints, dropped once the run is whole


def run_prune(
    config: PruneConfig, progress: Callable[[dict[str, Any]], None] | None = None, restart: bool = False
) -> PruneResult | None:
    """Run (or resume) the pipeline; returns its result on rank 0 (``result.run_dir`` is the run
    directory), None on the other ranks of a torchrun job.

    ``progress`` is called after every stage with ``{"stage", "stages", "target_ms", "top1"}``
    and once more with ``{"stage": "deploy"}`` before the final fine-tune and export.
    ``restart`` discards the work in progress of an earlier, unfinished run of ``config.out``.
    """

    start = time.perf_counter()
    with process_group(resolve_device(config.finetune.device)):
        run = load_inputs(config)
        default = Path("engines") / run.model_name / f"prune-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(from_main(lambda: str(config.out or default)))
        journal = from_main(lambda: Journal(run_dir, config, restart=restart))  # rank 0 creates or checks it
        journal.write = is_main_process()
        result = _pipeline(run, journal, run_dir, start, progress or (lambda event: None))
        if result is not None:
            _finish(partial_dir(run_dir), run_dir)
    return result


def _pipeline(run: PruneInputs, journal: Journal, run_dir: Path, start: float, progress) -> PruneResult | None:

    model = run.loaded.model
    base_model = copy.deepcopy(model)
    out = journal.dir
    (out / "tables").mkdir(parents=True, exist_ok=True)
    main = is_main_process()
    t0 = time.perf_counter()
    if main:
        run.method.setup(run.method_context(base_model, workdir=str(journal.work)))
    setup_s = time.perf_counter() - t0
    timer = CandidateTimer(run.latency.meta, base_model, run.input_shape, run.config.match.calls) if main else None
    stages, plan, mask = _stages(run, journal, model, base_model, timer, progress)
    mask.remove()
    if timer is not None:
        timer.close()
    progress(Deploying())
    final = prune_and_finetune(run, model, base_model, plan, journal)
    barrier()
    if not main:
        return None
    deployed = deploy(run, model, base_model, plan, final, out)
    method_s = setup_s + sum(o.decision.method_s for o in stages)
    table_s = sum(o.decision.table_s for o in stages)
    records, matching = [o.record for o in stages], [o.decision.trace for o in stages]
    result = assemble(run, records, matching, deployed, method_s, table_s, time.perf_counter() - start, str(run_dir))
    write_prune_report(result, out)
    return result


def _stages(run: PruneInputs, journal: Journal, model: nn.Module, base_model: nn.Module, timer, progress):
    """Every stage in order; a stage the journal records as finished is restored, not redone."""

    k = run.config.stages
    outcomes, plan, mask = [], None, None
    for s, target in enumerate(run.method.schedule(run.latency.base_ms, run.budget_ms, k), start=1):
        done = _restored(run, journal, model, s, mask)
        if done is None:
            last = outcomes[-1].record if outcomes else None
            inputs = StageInputs(
                run=run,
                method=run.method,
                timer=timer,
                model=model,
                base_model=base_model,
                stage=s,
                stages=k,
                target_ms=target,
                plan=plan,
                current=last.widths if last else None,
                current_ms=last.measured_ms if last else None,
                mask=mask,
                workdir=journal.dir / "tables",
            )
            done = run_stage(inputs, journal)
        outcomes.append(done)
        plan, mask = done.plan, done.mask
        progress(StageDone(s, k, target, done.record.top1))
    return outcomes, plan, mask


def _restored(run: PruneInputs, journal: Journal, model: nn.Module, stage: int, mask):
    """The outcome of a stage the journal records as finished, with the model loaded as it left it."""

    done = journal.find("stage", stage)
    if not done:
        return None
    decision = StageDecision.from_json(journal.find("decided", stage)[0].data)
    record = StageRecord.from_json(done[0].data["record"])
    plan = Plan.from_json(decision.plan)
    model.load_state_dict(journal.load_checkpoint(done[0].checkpoint)["model"])
    if mask is not None:
        mask.remove()
    log.info("stage %d: finished before, restored from %s", stage, done[0].checkpoint)
    return StageOutcome(record, plan, apply_masks(find_groups(model, run.input_shape), plan, run.model_name), decision)


def _finish(partial: Path, run_dir: Path) -> None:
    """The work in progress becomes the run directory, whole: its checkpoints go, the journal stays
    (``journal.json``: every step, once, in the order it finished, across resumes)."""
    os.replace(partial / WORK / "journal.json", partial / "journal.json")
    shutil.rmtree(partial / WORK, ignore_errors=True)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    os.replace(partial, run_dir)
