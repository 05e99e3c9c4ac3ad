"""Fine-tuning inside a prune run: the run's recipe, resumed from the journal's last finished epoch,
every epoch checkpointed, data parallel under torchrun, optionally distilled from the unpruned model."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from trtprune.prune.journal import JournalEntry
from trtprune.train.ddp import barrier, is_main_process, rank
from trtprune.train.loop import Distillation, evaluate, train

if TYPE_CHECKING:
    from torch import nn

    from trtprune.prune.inputs import PruneInputs
    from trtprune.prune.journal import Journal
    from trtprune.surgery.apply import SoftMask


def finetune(
    run: PruneInputs,
    model: nn.Module,
    base_model: nn.Module,
    stage: int,
    journal: Journal,
    mask: SoftMask | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` in place for stage ``stage`` (0: the final fine-tune, after physical pruning);
    returns ``{"epochs", "top1"}``. With the recipe's ``epochs`` 0 nothing trains and top-1 is evaluated.
    The model is left on the CPU."""

    config = run.config
    recipe = config.recipe(stage)
    phase = f"stage{stage}" if stage else "final"
    if recipe.epochs == 0:
        top1 = evaluate(model, _first(run.test_set, recipe.limit_test), device=recipe.device, task=run.task.name)
        model.cpu()
        return {"epochs": 0, "top1": top1}
    done = [e for e in journal.find("epoch", stage)]
    resume = _snapshot(journal, phase, done[-1].epoch) if done else None

    def on_epoch(snap: dict[str, Any]) -> None:
        epoch = snap["epoch"]
        journal.save_checkpoint(f"{phase}-epoch{epoch}-rank{rank()}.pt", {"rng": snap["rng"]}, every_rank=True)
        if is_main_process():
            shared = {k: v for k, v in snap.items() if k not in ("rng", "rank")}
            journal.save_checkpoint(f"{phase}-epoch{epoch}.pt", shared)
        barrier()
        journal.add(JournalEntry("epoch", stage, epoch, {"top1": snap["history"][-1]["top1"]}))

    teacher = None if config.distill is None else Distillation.of(copy.deepcopy(base_model), config.distill)
    hook = None if mask is None else (lambda _model: mask.apply())
    result = train(
        model,
        run.train_set,
        run.test_set,
        recipe,
        mask_hook=hook,
        distill=teacher,
        resume=resume,
        on_epoch=on_epoch,
        task=run.task.name,
    )
    model.cpu()
    return {"epochs": result.epochs, "top1": result.top1}


def _snapshot(journal: Journal, phase: str, epoch: int) -> dict[str, Any]:
    """The state after ``epoch`` of ``phase``: rank 0's weights and schedule, this rank's random state."""

    shared = journal.load_checkpoint(f"{phase}-epoch{epoch}.pt")
    own = journal.load_checkpoint(f"{phase}-epoch{epoch}-rank{rank()}.pt")
    return {**shared, "rng": own["rng"], "rank": rank()}


def _first(dataset, limit: int | None):
    from torch.utils.data import Subset

    return Subset(dataset, range(limit)) if limit is not None and limit < len(dataset) else dataset
