"""A pruned model measured beside its base: what a prune run reports as its latency."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from trtprune.core.records import Record
from trtprune.engine.timing import Timing


@dataclass(frozen=True)
class Measurement(Record):
    """The base and the pruned model timed beside each other in the table's engine. ``call_shares``:
    the paired share of each of several harness calls (their mean is the share; ``base`` and
    ``pruned`` are the timings of the median call). Older reports, measured in one call: ``shares``,
    where the first share was over the budget, the three shares measured (the median measurement is
    the one kept); empty otherwise."""

    FORMAT = 2
    NESTED = {"base": Timing, "pruned": Timing}
    ADDED = {"call_shares": (2, ())}

    base: Timing
    pruned: Timing
    environment: dict[str, str | int | float | bool | None]
    shares: tuple[float, ...] = ()
    call_shares: tuple[float, ...] = ()

    @property
    def share(self) -> float:
        """Pruned / base latency: the mean over the calls; from one call, the paired ratio where the
        harness gave one, else the ratio of medians."""
        if self.call_shares:
            return statistics.fmean(self.call_shares)
        return self.pruned.ratio or self.pruned.median_ms / self.base.median_ms

    @property
    def noise_share(self) -> float:
        """The harness's stated noise on the pruned model's share: half its inter-quartile range."""
        return 0.5 * self.pruned.spread * self.pruned.median_ms / max(self.base.median_ms, 1e-12)

    @classmethod
    def of(cls, timings: dict[str, Timing], environment: dict[str, Any]) -> Measurement:
        return cls(timings["base"], timings["pruned"], dict(environment))
