"""A table's frames: the base network, its probes and (block mode) its unpruned blocks, timed in one
interleaved batch at the start of a build (the opening frame) and, since LutConfig format 4, again
at its end (the closing frame).

Every term a table predicts with is a share of the network measured in a frame: a block's rows
are changes against the block timed beside them, in the block's own machine state, and the block's
share of the network in a frame puts them in the base's milliseconds. A shared machine's regime
can shift during a build (a whole network 9% faster in one build than in the next, minutes later),
and not every block shifts alike. The closing frame measures how far the frame moved while the
rows were timed; the prediction reads each share as the mean of both frames (and each probe's too),
so a build's terms sit between its two states, each with the noise of two measurements.

A build whose network moved more than :attr:`Remeasure.max_shift_pct` between its frames was
timed across two regimes of the machine: it says so, and, when asked (``lut build --remeasures N``),
it is measured again from a new opening frame (its rows and frames discarded, how far it moved kept
in the table), at most :attr:`Remeasure.attempts` times; the last measurement is kept whatever its
shift, and the build says so. A build resumed from an earlier invocation's opening frame is kept as
it is (a resume measures exactly the rows an uninterrupted build would): its shift is reported.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trtprune.core.records import Record

if TYPE_CHECKING:
    from trtprune.lut.store import LutStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame(Record):
    """One batch: the unpruned network, its probes' shares and each group's unpruned block's share."""

    FORMAT = 1

    base_ms: float
    probes: dict[str, float] = field(default_factory=dict)  # probe name -> share of the network
    blocks: dict[str, float] = field(default_factory=dict)  # group -> its unpruned block's share (block mode)


@dataclass(frozen=True)
class FrameShift(Record):
    """How far the closing frame moved from the opening one, in percent: the network's ms, and the
    median and largest absolute changes of the blocks' and probes' shares."""

    FORMAT = 1

    base_pct: float
    blocks_median_pct: float = 0.0
    blocks_max_pct: float = 0.0
    probes_median_pct: float = 0.0
    probes_max_pct: float = 0.0

    def describe(self) -> str:
        text = f"the network moved {self.base_pct:+.1f}% during the build"
        if self.blocks_max_pct:
            text += f"; blocks' shares {self.blocks_median_pct:.1f}% (median), {self.blocks_max_pct:.1f}% (max)"
        if self.probes_max_pct:
            text += f"; probes' shares {self.probes_median_pct:.1f}% (median), {self.probes_max_pct:.1f}% (max)"
        return text


@dataclass(frozen=True)
class Remeasure:
    """When a build measures its table again: its network moved more than ``max_shift_pct`` percent
    between the opening and the closing frame, and fewer than ``attempts`` measurements of this table
    were discarded. A build policy, not a setting of the table: it changes no prediction."""

    max_shift_pct: float = 5.0
    # off by default: measured again once, ResNet-50 @224's table cost 297 engines instead of 170 for
    # 0.91% / 2.31% share error, and ResNet-20 @28's 167 instead of 99 for a table no closer to its
    # second build (benchmarks/results/lut_fidelity-remeasure.md)
    attempts: int = 0

    def discards(self, moved: FrameShift, discarded: int, opened: bool) -> bool:
        """Whether a build whose frame ``moved`` (``discarded`` measurements before; ``opened``: its
        opening frame timed by this invocation, not a resumed one's) is measured again; logged."""
        far = abs(moved.base_pct) > self.max_shift_pct
        if opened and far and discarded < self.attempts:
            log.warning(
                "closing frame: %s, more than %g%%: measuring the table again (%d of %d)",
                moved.describe(), self.max_shift_pct, discarded + 1, self.attempts,
            )  # fmt: skip
            return True
        log.info("closing frame: %s", moved.describe())
        if far:
            why = f"after {discarded} new measurement(s)" if discarded else "" if opened else "a resumed build"
            log.warning(
                "the network moved %+.1f%% between the table's frames%s: kept; to measure it again, "
                "rebuild it with --force on a quieter machine or build with --remeasures 1",
                moved.base_pct, f" ({why})" if why else "",
            )  # fmt: skip
        return False


def shift(opening: Frame, closing: Frame) -> FrameShift:
    """How ``closing`` differs from ``opening`` (terms in both)."""

    def moved(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
        changes = [abs(b[k] / a[k] - 1.0) * 100.0 for k in a.keys() & b.keys() if a[k] > 0]
        return (statistics.median(changes), max(changes)) if changes else (0.0, 0.0)

    return FrameShift(
        (closing.base_ms / opening.base_ms - 1.0) * 100.0,
        *moved(opening.blocks, closing.blocks),
        *moved(opening.probes, closing.probes),
    )


def mean_shares(frames: list[Frame], part: str) -> dict[str, float]:
    """Each term's share of the network, averaged over the frames that measured it (``part``: probes or blocks)."""
    values: dict[str, list[float]] = {}
    for frame in frames:
        for key, share in getattr(frame, part).items():
            values.setdefault(key, []).append(share)
    return {k: statistics.fmean(v) for k, v in values.items()}


def opening(store: LutStore) -> Frame:
    """The frame timed at the start of the build: the base row, the probes and the blocks."""
    return Frame(
        store.base_ms(),
        {p.name: p.share for p in store.probes()},
        {g: b / n for g, (b, n) in store.block_refs().items()},
    )


def table_frames(store: LutStore) -> list[Frame]:
    """The frames a table's shares are read from: the opening one and, once timed, the closing one."""
    closing = store.closing()
    return [opening(store), *([closing] if closing else [])]


def frame_shift(store: LutStore) -> FrameShift | None:
    """How far a table's closing frame moved from its opening one (None without a closing frame)."""
    closing = store.closing()
    return shift(opening(store), closing) if closing else None
