"""A prune run's work in progress: ``RUN.partial/``: the run's outputs as they are
written, and in ``RUN.partial/resume/`` a journal and checkpoints, so a killed run continues
from its last finished step.

The journal (``journal.json``, rewritten atomically after every step) records the config and
trtprune version the run started with and, in order, each finished step: a stage's decision,
each fine-tuning epoch (its snapshot in ``<phase>-epoch<N>.pt``), a finished stage (the
soft-masked model in ``stage<N>.pt``) and the finished final fine-tune (the pruned model in
``final.pt``). Checkpoints are written atomically and read with ``weights_only=True``. A
rerun of the same command reads the journal and skips what it records; a rerun with another
config refuses, naming the first setting that differs (``--restart`` discards the journal).
Only when the run is complete does ``RUN.partial`` become ``RUN``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trtprune
from trtprune.core.atomic import atomic_path, write_json
from trtprune.core.errors import TrtpruneError
from trtprune.core.records import Record
from trtprune.models.checkpoint import load_state
from trtprune.prune.config import PruneConfig
from trtprune.train.resume import check_resumable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JournalEntry(Record):
    """One finished step: ``step`` is "decided", "epoch", "stage" or "final"."""

    step: str
    stage: int = 0  # the stage (0 for the final fine-tune)
    epoch: int = 0
    data: dict[str, Any] = field(default_factory=dict)  # what the step produced (a decision, a record)
    checkpoint: str | None = None


@dataclass(frozen=True)
class JournalState(Record):
    NESTED = {"config": PruneConfig, "entries": JournalEntry}

    version: str
    config: PruneConfig
    entries: tuple[JournalEntry, ...] = ()


class Journal:
    """The journal of one run directory's work in progress (rank 0 writes, every rank reads)."""

    def __init__(self, run_dir: Path, config: PruneConfig, restart: bool = False, write: bool = True) -> None:

        self.dir = partial_dir(run_dir)  # the run's outputs, as they are written
        self.work = self.dir / "resume"  # the journal and checkpoints
        self.path = self.work / "journal.json"
        self.write = write
        if restart and write and self.dir.exists():
            shutil.rmtree(self.dir)
        if self.path.exists():
            self.state = self._read()
            self._check(config, trtprune.__version__)
            log.info("resuming %s: %d finished steps", self.dir, len(self.state.entries))
        else:
            self.state = JournalState(trtprune.__version__, config)
            if write:
                self.work.mkdir(parents=True, exist_ok=True)
                self._save()

    @property
    def resumed(self) -> bool:
        return bool(self.state.entries)

    def _read(self) -> JournalState:
        try:
            obj = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TrtpruneError(
                f"the journal {self.path} is unreadable ({exc}); pass --restart to start over"
            ) from None
        return JournalState.from_json(obj, f"journal {self.path}")

    def _check(self, config: PruneConfig, version: str) -> None:
        if self.state.version != version:
            raise TrtpruneError(
                f"{self.dir} was started by trtprune {self.state.version}, this is {version}: "
                "finish it with that version or pass --restart"
            )
        check_resumable(self.dir, self.state.config.to_json(), config.to_json())

    def _save(self) -> None:

        write_json(self.path, self.state.to_json())

    def add(self, entry: JournalEntry) -> None:
        """Record a finished step (every rank keeps the same entries; rank 0 writes them)."""
        from dataclasses import replace

        self.state = replace(self.state, entries=(*self.state.entries, entry))
        if self.write:
            self._save()

    def find(self, step: str, stage: int = 0) -> list[JournalEntry]:
        return [e for e in self.state.entries if e.step == step and e.stage == stage]

    def save_checkpoint(self, name: str, obj: dict[str, Any], every_rank: bool = False) -> str:
        """``obj`` (tensors and plain data) written atomically as ``name`` (by rank 0, or by whichever
        rank calls with ``every_rank``: each its own file); returns the name."""
        import torch

        if self.write or every_rank:
            with atomic_path(self.work / name) as tmp:
                torch.save(obj, tmp)
        return name

    def load_checkpoint(self, name: str) -> dict[str, Any]:

        path = self.work / name
        return load_state(
            path,
            f"checkpoint {path} of the unfinished run is unreadable ({{why}}); pass --restart to start the run over",
        )


def partial_dir(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".partial")
