"""Quiet timing on a shared machine: freeze a cgroup of other jobs while the harness times.

A benchmark that trains and times in turns (``compare_fmnist.py``) runs for hours; other
work on the same two cores (tests, builds) would move its latency figures. With
``--freeze-cgroup DIR`` (a cgroup-v1 freezer directory holding those other jobs, e.g.
``/sys/fs/cgroup/freezer/devwork``) every call of the timing harness freezes that cgroup
for its duration and thaws it after, so nothing else runs while a latency is measured,
while the rest of the benchmark (training) shares the machine. Without the option nothing
is patched.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


_depth = 0  # nested timing calls (measure -> measure_interleaved) freeze once


@contextlib.contextmanager
def frozen(cgroup: Path):
    global _depth
    state = cgroup / "freezer.state"
    if _depth == 0:
        state.write_text("FROZEN\n")
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            state.write_text("THAWED\n")


def freeze_while_timing(cgroup: str | None) -> None:
    """Wrap the harness's entry points (``trtprune.engine.timing.measure`` and ``measure_interleaved``,
    and the copies modules imported already) so every timing call runs with ``cgroup`` frozen."""
    if not cgroup:
        return
    path = Path(cgroup)
    if not (path / "freezer.state").exists():
        raise SystemExit(f"--freeze-cgroup {cgroup}: not a cgroup-v1 freezer directory (no freezer.state)")
    import trtprune.engine.timing as timing

    for name in ("measure", "measure_interleaved"):
        original = getattr(timing, name)

        @functools.wraps(original)
        def wrapped(*args, _original=original, **kwargs):
            with frozen(path):
                return _original(*args, **kwargs)

        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("trtprune") and getattr(module, name, None) is original:
                setattr(module, name, wrapped)
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
