"""What a training or fine-tuning run is asked to do: its recipe (:class:`TrainConfig`) and, where a
teacher guides it, the distillation (:class:`DistillConfig`). Each default lives here, once."""

from __future__ import annotations

from dataclasses import dataclass

from trtprune.core.errors import UsageError
from trtprune.core.records import Record


@dataclass(frozen=True)
class TrainConfig(Record):
    """Hyper-parameters of one training or fine-tuning run.

    ``epochs`` 0 trains nothing (a prune run then only evaluates its stages; ``trtprune train`` refuses
    it). ``batch_size`` is per process: under ``torchrun`` the global batch is
    ``batch_size * WORLD_SIZE``. ``limit_train`` trains on N samples drawn at random (seeded
    by ``seed``, so every fine-tune of a staged run sees other samples); ``limit_test``
    evaluates on the first N.
    """

    KEY, ERROR = "training option", UsageError

    epochs: int = 1
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    workers: int = 0
    seed: int = 0
    device: str = "auto"  # CUDA where present, else the CPU
    limit_train: int | None = None
    limit_test: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.workers < 0:
            raise UsageError(
                f"bad training config: epochs ({self.epochs}) must be >= 0, batch size ({self.batch_size}) >= 1, "
                f"workers ({self.workers}) >= 0"
            )
        if not self.lr > 0 or self.momentum < 0 or self.weight_decay < 0:
            raise UsageError(f"bad training config: lr ({self.lr}) must be > 0, momentum and weight decay >= 0")


# what a prune run fine-tunes with unless told otherwise: one epoch per stage at a tenth of training's lr
FINETUNE = TrainConfig(epochs=1, lr=0.01)


@dataclass(frozen=True)
class DistillConfig(Record):
    """Fine-tune against a teacher's logits: the loss is ``(1 - weight) * CE + weight * T^2 * KL`` at
    temperature ``T`` (see :class:`~trtprune.train.loop.Distillation`)."""

    KEY, ERROR = "distillation option", UsageError

    temperature: float = 4.0
    weight: float = 0.5

    def __post_init__(self) -> None:
        if not self.temperature > 0 or not 0 <= self.weight <= 1:
            raise UsageError(
                f"distillation needs a temperature > 0 and a weight in [0, 1], not {self.temperature} and {self.weight}"
            )
