"""Progress of a long job: typed events the library hands its ``progress`` callback.

Each event says what it is in its own fields (a library user reads them) and, through
:meth:`Event.bar`, how a progress bar shows it: what is being done, how far, and a short note.
The CLI renders any event the same way, whichever step sent it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Bar:
    """A progress bar's view of an event: ``completed`` of ``total`` (None: unknown)."""

    what: str
    completed: int
    total: int | None
    note: str = ""


class Event(Protocol):
    def bar(self) -> Bar: ...


Progress = Callable[[Event], None]


@dataclass(frozen=True)
class TableRows:
    """A table's build (or verification): ``measured`` rows so far; ``group`` the block just done, the
    ``index``-th of ``groups`` (None: counting rows of ``total``)."""

    measured: int
    group: str | None = None
    index: int = 0
    groups: int | None = None
    total: int | None = None

    def bar(self) -> Bar:
        if self.group is None:
            return Bar("", self.measured, self.total)
        return Bar(self.group, self.index + 1, self.groups, f"{self.measured} rows")


@dataclass(frozen=True)
class StageDone:
    """A prune run's stage ``stage`` of ``stages`` finished at ``target_ms`` with ``top1`` (None: not evaluated)."""

    stage: int
    stages: int
    target_ms: float
    top1: float | None

    def bar(self) -> Bar:
        note = f"top-1 {self.top1:.3f}" if self.top1 is not None else ""
        return Bar(f"stage {self.stage}/{self.stages}", self.stage, self.stages, note)


@dataclass(frozen=True)
class Deploying:
    """A prune run's stages are done: the final fine-tune, export, engine and measurement follow."""

    def bar(self) -> Bar:
        return Bar("final fine-tune, export, engine", 0, None)


@dataclass(frozen=True)
class RunDone:
    """A comparison's run finished: ``done`` of ``total``."""

    done: int
    total: int

    def bar(self) -> Bar:
        return Bar("", self.done, self.total)


@dataclass(frozen=True)
class TrainStep:
    """A training step: ``step`` of ``steps`` in ``epoch``, with its batch ``loss``."""

    epoch: int
    step: int
    steps: int
    loss: float

    def bar(self) -> Bar:
        return Bar(f"epoch {self.epoch}", self.step, self.steps, f"loss {self.loss:.3f}")
