"""Step 2 of a prune run, once per stage: score, decide, match to the measured target, mask, fine-tune.

The method scores the channels of the (soft-masked, full-shape) model and turns a latency
goal into widths; the shared matching loop (:mod:`trtprune.decide.matching`) moves the goal until
the choice, built and timed in the table's engine beside the unpruned model, measures just
under the stage target less ``match_margin``; the choice becomes soft masks and the model
is fine-tuned with them held. Under torchrun rank 0 decides and every rank fine-tunes;
each finished step is journaled (:mod:`trtprune.prune.journal`) so a killed run resumes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.core.records import Record
from trtprune.decide.matching import decision_key, match_decisions
from trtprune.graph.groups import find_groups
from trtprune.methods import StageState
from trtprune.prune.journal import JournalEntry
from trtprune.prune.tables import TableView, remeasured
from trtprune.prune.tuning import finetune
from trtprune.surgery.apply import apply_masks, expected_param_count, prune_copy
from trtprune.surgery.plan import Plan
from trtprune.train.ddp import from_main, is_main_process

if TYPE_CHECKING:
    from torch import nn

    from trtprune.decide.decision import Decision
    from trtprune.methods import Method, StageState
    from trtprune.prune.inputs import PruneInputs
    from trtprune.prune.journal import Journal
    from trtprune.prune.tables import TableView
    from trtprune.prune.timer import CandidateTimer
    from trtprune.surgery.apply import SoftMask
    from trtprune.surgery.plan import Plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRecord(Record):
    """What a stage chose and measured (report.json's ``stages``)."""

    stage: int
    target_ms: float
    predicted_ms: float
    measured_share: float  # measured latency / unpruned latency measured beside it
    measured_ms: float  # in table milliseconds (share x table base)
    top1: float | None
    params: int
    widths: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StageDecision(Record):
    """A stage's matched choice, before its fine-tune (journaled: a resumed run does not decide again)."""

    plan: dict[str, Any]  # the Plan's JSON
    widths: dict[str, int]
    predicted_ms: float  # in the run's table's milliseconds
    measured_share: float
    trace: list[Any]  # the matching loop's (goal, predicted, measured) per round
    method_s: float
    table_s: float


@dataclass(frozen=True)
class StageInputs:
    """One stage's inputs: the run's, the model as the earlier stages left it, and their choice."""

    run: PruneInputs
    method: Method | None  # None on ranks other than 0 (they do not decide)
    timer: CandidateTimer | None
    model: nn.Module  # soft-masked by ``mask`` (None at the first stage), full shape
    base_model: nn.Module  # the unpruned model, untouched
    stage: int
    stages: int
    target_ms: float
    plan: Plan | None = None
    current: dict[str, int] | None = None  # the widths the earlier stages kept
    current_ms: float | None = None  # their measured latency (table ms)
    mask: SoftMask | None = None
    workdir: Path | None = None  # where --remeasure writes its tables


@dataclass
class StageOutcome:
    record: StageRecord
    plan: Plan
    mask: SoftMask  # now holding the model's removed channels at zero
    decision: StageDecision


def run_stage(s: StageInputs, journal: Journal) -> StageOutcome:
    """Decide (rank 0, or the journal's decision), mask and fine-tune (every rank), journal the stage."""

    run = s.run
    decided = journal.find("decided", s.stage)
    if decided:
        decision = StageDecision.from_json(decided[0].data, f"journal, stage {s.stage}")
    else:
        decision = from_main(lambda: decide(s))
        journal.add(JournalEntry("decided", s.stage, data=decision.to_json()))
    plan = Plan.from_json(decision.plan, f"stage {s.stage}'s plan")
    if s.mask is not None:
        s.mask.remove()
    groups = find_groups(s.model, run.input_shape)
    mask = apply_masks(groups, plan, run.model_name)
    tuned = finetune(run, s.model, s.base_model, s.stage, journal, mask)
    record = StageRecord(
        s.stage,
        s.target_ms,
        decision.predicted_ms,
        decision.measured_share,
        decision.measured_share * run.latency.base_ms,
        tuned["top1"],
        expected_param_count(groups, plan),
        dict(decision.widths),
    )
    checkpoint = journal.save_checkpoint(f"stage{s.stage}.pt", {"model": s.model.state_dict()})
    journal.add(JournalEntry("stage", s.stage, data={"record": record.to_json()}, checkpoint=checkpoint))
    if is_main_process():
        log.info(
            "stage %d/%d: target %.4f ms, predicted %.4f, measured share %.3f, top-1 %s",
            s.stage,
            s.stages,
            s.target_ms,
            record.predicted_ms,
            record.measured_share,
            tuned["top1"],
        )
    return StageOutcome(record, plan, mask, decision)


def decide(s: StageInputs) -> StageDecision:
    """Score the channels and find the choice that measures just under the stage target."""

    run = s.run
    groups = find_groups(s.model, run.input_shape)
    view = _view(s)
    state = StageState(
        model=s.model,
        groups=groups,
        latency=view.latency,
        current=s.current or {g.name: g.channels for g in groups.groups},
        round_to=run.round_to,
        model_name=run.model_name,
        stage=s.stage,
        stages=s.stages,
        seed=run.config.seed,
        plan=s.plan,
        batches=run.batches,
        loss=run.batch_loss,
    )
    t0 = time.perf_counter()
    state.scores = removed_last(s.method.score(state), s.plan)
    decision, share, trace = _match(s, state, view)
    return StageDecision(
        decision.plan.to_json(),
        dict(decision.widths),
        decision.predicted_ms * view.scale,
        share,
        [list(t) for t in trace],
        time.perf_counter() - t0,
        view.build_s,
    )


def _view(s: StageInputs) -> TableView:

    if s.run.config.remeasure and s.current:
        return remeasured(s.run, s.base_model, s.current, s.current_ms, s.workdir / f"stage{s.stage}.db")
    return TableView(s.run.latency, 1.0)


def _match(s: StageInputs, state: StageState, view: TableView) -> tuple[Decision, float, list]:
    """Decide, build and time the choice; adjust the goal until it measures just under target."""

    run = s.run
    shares: dict[tuple, float] = {}

    def measure(decision: Decision) -> float:
        share = s.timer.share(prune_copy(s.base_model, run.groups, decision.widths))
        key = decision_key(decision)
        shares[key] = max(share, shares.get(key, 0.0))  # a confirmed choice: the slower
        return share * run.latency.base_ms

    policy = run.config.match
    match = match_decisions(
        lambda goal: s.method.decide(state, goal), measure, s.target_ms, run.latency.base_ms, policy, view.scale
    )
    if not match.met:
        log.warning(
            "stage target %.4f ms (less the %.0f%% margin) not met: the fastest choice measured %.4f ms",
            s.target_ms,
            100 * policy.margin,
            match.measured,
        )
    return match.choice, shares[decision_key(match.choice)], match.trace


def removed_last(scores: dict[str, Any], plan: Plan | None) -> dict[str, Any]:
    """Channels an earlier stage removed stay removed: they score below every kept channel
    (soft masks zero only the producer side, so some scores still see their consumer slices)."""
    if plan is None:
        return scores
    out = dict(scores)
    for name, kept in plan.groups.items():
        values = np.asarray(out[name], dtype=np.float64)
        alive = np.zeros(len(values), dtype=bool)
        alive[np.asarray(kept)] = True
        out[name] = np.where(alive, values, values.min() - 1.0 - np.abs(values).max())
    return out
