"""The MAC-cost ablation (``sp-lamp-macs``): the default method with the knapsack's costs taken
from MACs instead of the measured table.

Everything else is the default method's: the same scores, the same exact group knapsack,
and the same matching loop that moves the goal until the engine *measures* the choice
just under the stage target. Only the cost model differs: a network's latency is taken
as proportional to its multiply-accumulates, anchored at the table's base latency. The
gap between the two at equal measured latency is what the measured table buys.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from trtprune.core.errors import TrtpruneError
from trtprune.methods.base import METHODS, StageState
from trtprune.methods.description import MethodDescription
from trtprune.methods.sp_lamp import SpLamp

if TYPE_CHECKING:
    from trtprune.lut.layers import LayerJoin
    from trtprune.lut.predict import LatencyModel


class MacCost:
    """Latency as a share of MACs around the ``ref`` widths (where it is ``ref_ms``): the interface of
    :class:`~trtprune.lut.predict.LatencyModel` the knapsack reads (``base_ms``, ``delta_ms``,
    ``predict_widths``, ``joined_ms``, ``joined_change``). ``layers`` hold each conv/linear's MACs at
    the ``ref`` widths."""

    def __init__(self, layers: tuple[LayerJoin, ...], ref: dict[str, int], ref_ms: float) -> None:
        self.layers, self.ref, self.base_ms = layers, dict(ref), ref_ms
        self.ref_macs = self.macs(self.ref)

    @classmethod
    def of_table(cls, latency: LatencyModel) -> MacCost:
        """MACs of the network a table was measured on (its layers, at its widths), in its milliseconds."""

        if not latency.settings.layers:
            raise TrtpruneError(
                "this table records no layers (built by an old trtprune): rebuild it with 'trtprune lut'"
            )
        return cls(latency.settings.layers, latency.meta.widths, latency.base_ms)

    def macs(self, widths: dict[str, int], layers: tuple[LayerJoin, ...] | list[LayerJoin] | None = None) -> float:
        total = 0.0
        for layer in self.layers if layers is None else layers:
            scale = 1.0
            for g in {layer.in_group, layer.out_group} - {None}:  # a depthwise conv scales once
                scale *= widths.get(g, self.ref[g]) / self.ref[g]
            total += layer.macs * scale
        return total

    def predict_widths(self, widths: dict[str, int]) -> float:
        return self.base_ms * self.macs(widths) / self.ref_macs

    def delta_ms(self, group: str, width: int) -> float:
        return self.predict_widths({group: width}) - self.base_ms

    def joined_ms(self, widths: dict[str, int]) -> float:
        """The full prediction (MACs of layers joining two groups scale with both): what the joined
        solver linearises."""
        return self.predict_widths(widths)

    def joined_change(self, widths: dict[str, int], group: str, width: int) -> float:
        """``joined_ms`` with ``group`` at ``width`` less ``joined_ms(widths)``, from its layers only."""
        touching = [j for j in self.layers if group in (j.in_group, j.out_group)]
        other = {**widths, group: width}
        return self.base_ms * (self.macs(other, touching) - self.macs(widths, touching)) / self.ref_macs


@METHODS.register("sp-lamp-macs")
class SpLampMacs(SpLamp):
    name = "sp-lamp-macs"

    def cost_model(self, state: StageState) -> MacCost:
        return MacCost.of_table(state.latency)

    def describe(self) -> MethodDescription:
        return replace(super().describe(), latency="MACs, anchored at the table's base latency (ablation)")
