"""Quiet timing on a shared machine: freeze a cgroup of other jobs while the harness times.

A benchmark that trains and times in turns (``compare_fmnist.py``) runs for hours; other
work on the same two cores (tests, builds) would move its latency figures. With
``--freeze-cgroup DIR`` (a cgroup-v1 freezer directory holding those other jobs, e.g.
``/sys/fs/cgroup/freezer/devwork``) the freezer is the timing harness's guard
(:func:`trtprune.engine.timing.set_timing_guard`): every measurement freezes that cgroup for
its duration and thaws it after, so nothing else runs while a latency is measured, while the
rest of the benchmark (training) shares the machine. Without the option no guard is set.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from trtprune.engine.timing import set_timing_guard

log = logging.getLogger(__name__)


@contextlib.contextmanager
def frozen(cgroup: Path) -> Iterator[None]:
    """``cgroup`` (a cgroup-v1 freezer directory) frozen while the block runs, thawed after."""
    state = cgroup / "freezer.state"
    state.write_text("FROZEN\n")
    try:
        yield
    finally:
        state.write_text("THAWED\n")


def freeze_while_timing(cgroup: str | None) -> None:
    """Register the freezer of ``cgroup`` as the harness's timing guard (nothing when ``cgroup`` is empty)."""
    if not cgroup:
        return
    path = Path(cgroup)
    if not (path / "freezer.state").exists():
        raise SystemExit(f"--freeze-cgroup {cgroup}: not a cgroup-v1 freezer directory (no freezer.state)")
    set_timing_guard(lambda: frozen(path))
    # a benchmark stopped by SIGTERM (kill, pkill) while it times must thaw the cgroup: exit through the
    # ``finally`` of :func:`frozen` instead of dying inside it
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    log.info("timing calls freeze %s", path)


def benchmark_parser(description: str):
    """The options every training-and-timing benchmark takes: where its work lives, what to freeze."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default="engines/bench", help="bases, tables and runs (kept: the benchmark resumes)")
    parser.add_argument("--freeze-cgroup", default=None, help="cgroup-v1 freezer of other jobs, frozen while timing")
    return parser


def start(args) -> Path:
    """Log with timestamps, freeze ``--freeze-cgroup`` while timing; returns ``--out`` (created)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    freeze_while_timing(args.freeze_cgroup)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out
