"""Timing a candidate the way the table was measured: its engine, beside the unpruned model."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from trtprune.engine.candidates import prepare
from trtprune.engine.timing import measure_interleaved
from trtprune.lut.settings import read_settings

if TYPE_CHECKING:
    from torch import nn

    from trtprune.lut.store import LutMeta


class CandidateTimer:
    """Builds candidates in the table's backend and times each beside the unpruned model (prepared once)."""

    def __init__(self, meta: LutMeta, base_model: nn.Module, input_shape: tuple[int, ...], calls: int = 1) -> None:

        self.backend, self.input_shape, self.calls = meta.backend, input_shape, calls
        self.config = read_settings(meta).backend_config
        self.base_runner = prepare(base_model, input_shape, self.backend, self.config)

    def share(self, model: nn.Module) -> float:
        """``model``'s latency as a share of the unpruned model's: paired round by round in each of
        ``calls`` harness calls, the mean over the calls."""

        with prepare(model, self.input_shape, self.backend, self.config) as runner:
            timed = {"base": self.base_runner.timed, "cand": runner.timed}
            shares = [measure_interleaved(timed, reference="base")["cand"].ratio for _ in range(self.calls)]
        return statistics.fmean(shares)

    def close(self) -> None:
        self.base_runner.close()
