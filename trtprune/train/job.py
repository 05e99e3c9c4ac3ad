"""A training job as data: load or build, optionally prune, train, save (rank 0 only)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtprune.core.errors import UsageError
from trtprune.core.shapes import parse_shape
from trtprune.data import get_dataset, get_spec
from trtprune.models import get_model_spec
from trtprune.models.checkpoint import save_checkpoint
from trtprune.models.loading import load_model, prune_loaded
from trtprune.tasks import check_task, get_task
from trtprune.train.config import DistillConfig, TrainConfig
from trtprune.train.ddp import is_main_process, process_group
from trtprune.train.loop import Distillation, TrainResult, resolve_device, train
from trtprune.train.resume import EpochSnapshots

log = logging.getLogger(__name__)


@dataclass
class TrainJob:
    model: str | None
    data: str
    out: Path
    data_root: Path | None = None
    input_shape: str | None = None
    checkpoint: Path | None = None
    plan: Path | None = None
    keep_ratio: float | None = None
    config: TrainConfig = TrainConfig()
    teacher: Path | None = None  # distil from this (unpruned) checkpoint's logits
    weights: str | None = None  # torchvision's named weights to start from (instead of a checkpoint)
    distill: DistillConfig = DistillConfig()  # how, where there is a teacher

    def __post_init__(self) -> None:
        if self.config.epochs < 1:
            raise UsageError(f"epochs must be >= 1 to train, not {self.config.epochs}")

    def settings(self) -> dict[str, Any]:
        """The job's settings, as JSON: an interrupted run resumes only with the same, but those
        :data:`~trtprune.train.resume.MAY_CHANGE_ON_RESUME` allows (the data loader's worker count)."""
        train = self.config.to_json()
        paths = {"data_root": self.data_root, "checkpoint": self.checkpoint, "plan": self.plan, "teacher": self.teacher}
        settings = {
            "model": self.model,
            "data": self.data,
            "input_shape": self.input_shape,
            "keep_ratio": self.keep_ratio,
            "distill_temperature": self.distill.temperature if self.teacher else None,  # flat: older runs resume
            "distill_weight": self.distill.weight if self.teacher else None,
            "train": train,
            **{k: os.fspath(v) if v is not None else None for k, v in paths.items()},
        }
        if self.weights:  # only where set: runs started before --weights existed still resume
            settings["weights"] = self.weights
        return settings


def run_train_job(job: TrainJob, progress=None, restart: bool = False) -> TrainResult | None:
    """Run ``job``; returns the result on the main process (None on other ranks). Resumes after the
    last finished epoch of an interrupted run of the same job (:mod:`trtprune.train.resume`); ``restart``
    discards that work."""

    spec = get_spec(job.data)
    shape = job.input_shape
    if shape is None and job.checkpoint is None:
        shape = (1, *spec.preprocessing.input_size)
    classes = spec.num_classes or _classes_of(get_dataset(job.data, "train", job.data_root, input_size=_size(shape)))
    loaded = load_model(job.model, shape, job.checkpoint, num_classes=classes, weights=job.weights)
    task = get_model_spec(loaded.name).task
    check_task(loaded.name, task, spec.name, spec.task)
    refusal = get_task(task).distill_refusal(loaded.name)
    if job.teacher is not None and refusal:
        raise UsageError(refusal)
    size = tuple(loaded.input_shape[1:])  # an ImageFolder resizes to the model's input
    train_set = get_dataset(job.data, "train", job.data_root, augment=True, input_size=size)
    test_set = get_dataset(job.data, "test", job.data_root, input_size=size)
    loaded = prune_loaded(loaded, job.plan, job.keep_ratio)
    distill = None
    if job.teacher is not None:
        teacher = load_model(loaded.name, loaded.input_shape, job.teacher, num_classes=classes).model
        distill = Distillation.of(teacher, job.distill)
    with process_group(resolve_device(job.config.device)):  # joined before the snapshots: ranks name their files
        snapshots = EpochSnapshots(job.out, job.settings(), restart)
        result = train(
            loaded.model,
            train_set,
            test_set,
            job.config,
            progress=progress,
            distill=distill,
            resume=snapshots.latest(),
            on_epoch=snapshots.save,
            task=task,
        )
    if not is_main_process():
        return None
    save_checkpoint(
        job.out,
        loaded.model,
        model_name=loaded.name,
        input_shape=loaded.input_shape,
        num_classes=loaded.num_classes,
        preprocessing=spec.preprocessing.to_json(),
        plan=loaded.plan.to_json() if loaded.plan else None,
        metrics={"top1": result.top1, "data": job.data, "train": job.config.to_json()},
    )
    snapshots.finish()
    log.info("wrote %s", os.fspath(job.out))
    return result


def _classes_of(dataset: Any) -> int | None:
    """The class count a dataset declares: an ImageFolder's classes, a COCO set's largest category id + 1."""
    return getattr(dataset, "num_classes", None) or len(getattr(dataset, "classes", [])) or None


def _size(shape: str | tuple[int, ...] | None) -> tuple[int, ...] | None:
    return tuple(parse_shape(shape)[1:]) if shape is not None else None
