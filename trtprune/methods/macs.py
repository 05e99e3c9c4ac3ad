"""The MAC-cost ablation (``sp-lamp-macs``): the default method with the knapsack's costs taken
from MACs instead of the measured table.

Everything else is the default method's: the same scores, the same exact group knapsack,
and the same matching loop that moves the goal until the engine *measures* the choice
just under the stage target. Only the cost model differs: a network's latency is taken
as proportional to its multiply-accumulates, anchored at the table's base latency. The
gap between the two at equal measured latency is what the measured table buys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtprune.methods.base import METHODS, StageState
from trtprune.methods.sp_lamp import SpLamp


@dataclass(frozen=True)
class LayerMacs:
    """One conv/linear: the group it consumes (``c_in``), the group it produces (``c_out``), and
    its MACs per sample at the unpruned widths. A depthwise conv consumes and produces one group."""

    layer: str
    in_group: str | None
    out_group: str | None
    macs: int


def layer_macs(model, input_shape: tuple[int, ...], groups) -> list[LayerMacs]:
    """Every conv/linear of an unpruned model with the groups it joins (one forward pass)."""
    from trtprune.lut.layers import layer_joins

    return [LayerMacs(j["layer"], j["in"], j["out"], j["macs"]) for j in layer_joins(model, input_shape, groups)]


class MacCost:
    """Latency as a share of MACs: the interface of :class:`~trtprune.lut.predict.LatencyModel`
    that the knapsack reads (``base_ms``, ``delta_ms``, ``predict_widths``), around ``ref_widths``."""

    def __init__(
        self, layers: list[LayerMacs], full: dict[str, int], ref_widths: dict[str, int], ref_ms: float
    ) -> None:
        self.layers, self.full, self.ref_widths, self.base_ms = layers, full, dict(ref_widths), ref_ms
        self.ref_macs = self.macs(self.ref_widths)

    def macs(self, widths: dict[str, int]) -> float:
        total = 0.0
        for layer in self.layers:
            scale = 1.0
            for g in {layer.in_group, layer.out_group} - {None}:  # a depthwise conv scales once
                scale *= widths.get(g, self.full[g]) / self.full[g]
            total += layer.macs * scale
        return total

    def predict_widths(self, widths: dict[str, int]) -> float:
        return self.base_ms * self.macs({**self.ref_widths, **widths}) / self.ref_macs

    def delta_ms(self, group: str, width: int) -> float:
        return self.predict_widths({group: width}) - self.base_ms


@METHODS.register("sp-lamp-macs")
class SpLampMacs(SpLamp):
    name = "sp-lamp-macs"

    def setup(self, job: Any) -> None:
        self.layers = layer_macs(job.loaded.model, tuple(job.loaded.input_shape), job.base_groups)
        self.full = {g.name: g.channels for g in job.base_groups.groups}

    def cost_model(self, state: StageState) -> MacCost:
        return MacCost(self.layers, self.full, state.latency.meta.widths, state.latency.base_ms)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "latency": "MACs, anchored at the table's base latency (ablation)"}
