"""Training and fine-tuning engine: SGD with momentum, a per-step cosine schedule, the task's loss
(cross-entropy for classifiers, a detector's own losses; :mod:`trtprune.tasks`).

The same loop trains models from scratch and fine-tunes pruned ones (``mask_hook``
keeps soft-pruned channels at zero after every optimizer step). Launched by
``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel; every
rank returns the same top-1 and the same weights, and callers write their
outputs only where :func:`is_main_process` is true.

The library only logs; a CLI drives its progress bar through the ``progress`` callback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from trtprune.core.errors import DataError, TrtpruneError, UsageError
from trtprune.core.progress import Progress, TrainStep
from trtprune.tasks import Task, get_task
from trtprune.tasks.classify import logits_of
from trtprune.train.config import DistillConfig, TrainConfig
from trtprune.train.ddp import env_int, process_group, rank
from trtprune.train.layout import training_layout

log = logging.getLogger(__name__)

MaskHook = Callable[[nn.Module], None]


@dataclass
class TrainResult:
    """Outcome of :func:`train`: final mean train loss, final test top-1, one history row per epoch."""

    epochs: int
    train_loss: float
    top1: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainResult:
        return cls(
            epochs=int(obj["epochs"]),
            train_loss=float(obj["train_loss"]),
            top1=float(obj["top1"]),
            history=[dict(row) for row in obj.get("history", [])],
        )


@dataclass(frozen=True)
class Distillation:
    """Fine-tune against a teacher's logits (the unpruned model): the loss is
    ``(1 - weight) * CE(student, labels) + weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))``."""

    teacher: nn.Module
    temperature: float = DistillConfig.temperature
    weight: float = DistillConfig.weight

    def __post_init__(self) -> None:
        DistillConfig(self.temperature, self.weight)  # validates

    @classmethod
    def of(cls, teacher: nn.Module, config: DistillConfig) -> Distillation:
        return cls(teacher, config.temperature, config.weight)

    def loss(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = _logits(self.teacher(x))
        t = self.temperature
        kl = F.kl_div(
            F.log_softmax(logits / t, 1), F.log_softmax(target / t, 1), log_target=True, reduction="batchmean"
        )
        return (1 - self.weight) * F.cross_entropy(logits, y) + self.weight * t * t * kl


Snapshot = dict[str, Any]  # a training run's state after an epoch: resume from it with train(..., resume=)


@dataclass
class _Loop:
    """Everything one training epoch needs."""

    model: nn.Module  # possibly the DDP wrapper
    module: nn.Module  # the plain module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loader: DataLoader
    sampler: DistributedSampler | None
    device: torch.device
    progress: Progress | None
    mask_hook: MaskHook | None
    distill: Distillation | None = None
    task: Task | None = None


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` is CUDA where present, else the CPU; ``cuda`` without an index is this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrtpruneError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", env_int("LOCAL_RANK", 0))
        torch.cuda.set_device(device)
    return device


def _limit(dataset: Dataset, limit: int | None, seed: int | None = None) -> Dataset:
    """The first ``limit`` samples, or with ``seed`` a random subset of that size (the same on
    every rank: it depends on the seed only)."""
    if limit is None or limit >= len(dataset):
        return dataset
    if seed is None:
        return Subset(dataset, range(limit))
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, sorted(order[:limit].tolist()))


_logits = logits_of


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    task: str = "classify",
) -> float:
    """The task's headline metric of ``model`` on ``dataset`` in [0, 1] (top-1; a detector's COCO
    mAP@[.5:.95]); leaves the model in eval mode on ``device``."""
    if len(dataset) == 0:
        raise DataError("cannot evaluate on an empty dataset")
    device = resolve_device(device)
    return get_task(task).evaluate(_unwrap(model).to(device).eval(), dataset, batch_size, device)


def _make_loop(
    model: nn.Module,
    train_set: Dataset,
    config: TrainConfig,
    device: torch.device,
    distributed: bool,
    progress: Progress | None,
    mask_hook: MaskHook | None,
    distill: Distillation | None = None,
    task: Task | None = None,
) -> _Loop:
    sampler = DistributedSampler(train_set, shuffle=True, seed=config.seed) if distributed else None
    loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed),
        collate_fn=task.collate if task is not None else None,
        drop_last=task is not None and task.drop_last and len(train_set) > config.batch_size,
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=False
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(loader))
    wrapped = model
    if distributed:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return _Loop(wrapped, model, optimizer, scheduler, loader, sampler, device, progress, mask_hook, distill, task)


def _snapshot(loop: _Loop, history: list[dict[str, Any]]) -> Snapshot:
    return {
        "epoch": len(history),
        "history": [dict(h) for h in history],
        "model": loop.module.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "loader_rng": loop.loader.generator.get_state(),
        "rank": rank(),
    }


def _restore(loop: _Loop, snap: Snapshot) -> list[dict[str, Any]]:
    """Put a loop where ``snap`` left it; returns the history so far."""
    loop.module.load_state_dict(snap["model"])
    loop.optimizer.load_state_dict(snap["optimizer"])
    loop.scheduler.load_state_dict(snap["scheduler"])
    torch.set_rng_state(snap["rng"])
    loop.loader.generator.set_state(snap["loader_rng"])
    return [dict(h) for h in snap["history"]]


def _step(loop: _Loop, batch: Any) -> tuple[torch.Tensor, int]:
    loop.optimizer.zero_grad(set_to_none=True)
    loss, n = loop.task.batch_loss(loop.model, batch, loop.device, loop.distill)
    loss.backward()
    loop.optimizer.step()
    if loop.mask_hook is not None:
        loop.mask_hook(loop.module)
    loop.scheduler.step()
    return loss.detach(), n


def _train_epoch(loop: _Loop, epoch: int) -> float:
    """One pass over the (sharded) train set; returns the mean loss over all ranks."""
    if loop.sampler is not None:
        loop.sampler.set_epoch(epoch)
    loop.model.train()
    totals = torch.zeros(2, dtype=torch.float64, device=loop.device)  # loss sum, sample count
    steps = len(loop.loader)
    for step, batch in enumerate(loop.loader, 1):
        loss, n = _step(loop, batch)
        totals[0] += loss * n
        totals[1] += n
        if loop.progress is not None:
            loop.progress(TrainStep(epoch, step, steps, float(loss)))
    if loop.sampler is not None:
        dist.all_reduce(totals)
    return float(totals[0] / totals[1])


def _sync_buffers(module: nn.Module) -> None:
    """BatchNorm statistics drift apart on each rank's last batch: take rank 0's, as DDP does."""
    for buf in module.buffers():
        dist.broadcast(buf, src=0)


def train(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    mask_hook: MaskHook | None = None,
    distill: Distillation | None = None,
    resume: Snapshot | None = None,
    on_epoch: Callable[[Snapshot], None] | None = None,
    task: str = "classify",
) -> TrainResult:
    """Train ``model`` in place and return its loss and top-1 after every epoch.

    Reproducible for a given ``config.seed`` (the global RNG is seeded inside and
    restored afterwards). ``progress`` is called after every batch with
    ``{"epoch", "step", "steps", "loss"}``; ``mask_hook(model)`` after every
    optimizer step. Under ``torchrun`` the train set is sharded across ranks;
    the test set is evaluated in full on every rank, so all ranks agree on top-1.
    The model is returned unwrapped, in eval mode, on ``config.device``.

    ``on_epoch(snapshot)`` is called after every epoch with everything needed to go on
    from there (weights, optimiser and schedule, this rank's random states, the history);
    ``train(..., resume=snapshot)`` continues with the next epoch exactly as an
    uninterrupted run would (bit-identical on CPU). ``distill`` fine-tunes against a
    teacher's logits. ``task`` (:mod:`trtprune.tasks`) sets the loss, the batching and the metric
    (the history's and the result's ``top1`` hold the task's headline metric: a detector's mAP).
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    train_set, test_set = _limit(train_set, config.limit_train, config.seed), _limit(test_set, config.limit_test)
    if len(train_set) == 0:
        raise DataError("cannot train on an empty dataset")
    rng_devices = [device.index] if device.type == "cuda" else []
    with process_group(device) as distributed, torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(config.seed + rank())  # per-rank augmentation; DDP broadcasts rank 0's weights
        model.to(device)
        if distill is not None:
            distill.teacher.to(device).eval()
        with training_layout(model, device):
            loop = _make_loop(
                model, train_set, config, device, distributed, progress, mask_hook, distill, get_task(task)
            )
            history = _restore(loop, resume) if resume else []
            for epoch in range(len(history) + 1, config.epochs + 1):
                history.append(_run_epoch(loop, epoch, config, test_set, distributed))
                if on_epoch is not None:
                    on_epoch(_snapshot(loop, history))
    model.eval()
    last = history[-1]
    return TrainResult(epochs=config.epochs, train_loss=last["loss"], top1=last["top1"], history=history)


def _run_epoch(loop: _Loop, epoch: int, config: TrainConfig, test_set: Dataset, distributed: bool) -> dict[str, Any]:
    loss = _train_epoch(loop, epoch)
    if not math.isfinite(loss):
        raise TrtpruneError(
            f"training diverged at epoch {epoch} (loss {loss}); lower the learning rate (now {config.lr})"
        )
    if distributed:
        _sync_buffers(loop.module)
    top1 = evaluate(loop.module, test_set, max(256, config.batch_size), loop.device, loop.task.name)
    lr = float(loop.optimizer.param_groups[0]["lr"])
    label = loop.task.metric_label
    log.info("epoch %d/%d: train loss %.4f, test %s %.4f, lr %.4g", epoch, config.epochs, loss, label, top1, lr)
    return {"epoch": epoch, "loss": loss, "top1": top1, "lr": lr}
