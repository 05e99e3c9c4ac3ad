"""A training run's work in progress: ``OUT.partial/`` beside the checkpoint ``OUT`` it will write,
so ``trtprune train`` killed after some epochs continues after the last finished one.

``settings.json`` records the trtprune version and the job's settings. After every epoch the
training state (weights, optimiser, schedule, data order, history) is written by rank 0 as
``epoch<N>.pt`` and every rank's random state as ``epoch<N>-rank<R>.pt``, atomically; then the
previous epoch's files go. A rerun of the same command continues after the last epoch whose
files are complete (bit-identical to an uninterrupted run on CPU); a rerun with other settings
refuses, naming the first that differs (``--restart`` starts over). Once ``OUT`` is written,
``OUT.partial`` is removed.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import trtprune
from trtprune.core.atomic import atomic_path, write_json
from trtprune.core.errors import TrtpruneError
from trtprune.models.checkpoint import load_state
from trtprune.train.ddp import barrier, is_main_process, rank

log = logging.getLogger(__name__)

_SHARED = re.compile(r"epoch(\d+)\.pt")


# Settings a run may resume with changed: how many processes load the data does not change a batch.
# Everything else a run was started with must be the same to resume it (prune journals and training
# snapshots alike); dotted keys name nested settings.
MAY_CHANGE_ON_RESUME = frozenset({"workers", "finetune.workers", "train.workers"})


def check_resumable(where: Path, started: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse to resume ``where`` with other settings than it was started with (but those in
    :data:`MAY_CHANGE_ON_RESUME`), naming the first that differs."""
    old, new = _flat(started), _flat(wanted)
    for key in dict.fromkeys([*new, *old]):
        if key not in MAY_CHANGE_ON_RESUME and old.get(key) != new.get(key):
            raise TrtpruneError(
                f"{where} was started with {key}={old.get(key)!r}, not {new.get(key)!r}: "
                "rerun with the same settings to resume, or pass --restart to start over"
            )


def _flat(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict) and key != "method_options":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class EpochSnapshots:
    """The per-epoch snapshots of one training job (rank 0 writes the shared state, every rank its own).
    Under torchrun, make it inside the joined process group (:func:`trtprune.train.ddp.process_group`)."""

    def __init__(self, out: Path, settings: dict[str, Any], restart: bool = False) -> None:

        self.dir = Path(out).with_name(Path(out).name + ".partial")
        self.main = is_main_process()
        if restart and self.main and self.dir.exists():
            shutil.rmtree(self.dir)
        barrier()
        wanted = json.loads(json.dumps({"version": trtprune.__version__, **settings}))  # as the file reads back
        path = self.dir / "settings.json"
        if path.exists() and not restart:
            self._check(path, wanted)
        elif self.main:
            write_json(path, wanted)
        barrier()

    def _check(self, path: Path, wanted: dict[str, Any]) -> None:
        try:
            started = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TrtpruneError(f"{path} is unreadable ({exc}); pass --restart to start the training over") from None
        check_resumable(self.dir, started, wanted)

    def latest(self) -> dict[str, Any] | None:
        """The snapshot after the last epoch whose files are complete (None before the first)."""

        done = sorted(int(m.group(1)) for p in self.dir.glob("epoch*.pt") if (m := _SHARED.fullmatch(p.name)))
        for epoch in reversed(done):
            own = self.dir / f"epoch{epoch}-rank{rank()}.pt"
            if own.exists():
                log.info("resuming %s after epoch %d", self.dir, epoch)
                return {**self._load(self.dir / f"epoch{epoch}.pt"), "rng": self._load(own)["rng"], "rank": rank()}
        return None

    def _load(self, path: Path) -> dict[str, Any]:

        return load_state(
            path,
            f"snapshot {path} of the unfinished training is unreadable ({{why}}); pass --restart to start the training over",
        )

    def save(self, snap: dict[str, Any]) -> None:
        """``train(on_epoch=...)``: write this epoch's snapshot, then drop the previous epoch's."""
        import torch

        epoch = snap["epoch"]
        with atomic_path(self.dir / f"epoch{epoch}-rank{rank()}.pt") as tmp:
            torch.save({"rng": snap["rng"]}, tmp)
        barrier()
        if self.main:
            with atomic_path(self.dir / f"epoch{epoch}.pt") as tmp:  # last: it marks the epoch complete
                torch.save({k: v for k, v in snap.items() if k not in ("rng", "rank")}, tmp)
            for old in self.dir.glob("epoch*.pt"):
                if not re.fullmatch(rf"epoch{epoch}(-rank\d+)?\.pt", old.name):
                    old.unlink()
        barrier()

    def finish(self) -> None:
        """The checkpoint is written: the work in progress goes."""
        if self.main:
            shutil.rmtree(self.dir, ignore_errors=True)
