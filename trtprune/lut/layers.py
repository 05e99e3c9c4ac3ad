"""Which convolutions and linears join which channel groups, what each computes (MACs), and the
spatial resolution each group's channels live at.

A layer that consumes group ``a`` and produces group ``b`` costs about c_a x c_b, so
cutting both saves less than the two cuts measured alone. The table records these
joins (no measurement: one forward pass counts the MACs) so a prediction can
correct the sum of single-group changes (:class:`~trtprune.lut.predict.LatencyModel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trtprune.core.records import Record
from trtprune.graph.layer_shapes import layer_calls

if TYPE_CHECKING:
    from torch import nn

    from trtprune.graph.groups import ModelGroups


@dataclass(frozen=True)
class LayerJoin(Record):
    """One conv/linear: the group it consumes (its input channels), the group it produces (its
    output channels), None where ungrouped, and its MACs per sample at the unpruned widths.
    A depthwise conv consumes and produces the same group."""

    layer: str
    in_group: str | None
    out_group: str | None
    macs: int


def layer_joins(model: nn.Module, input_shape: tuple[int, ...], groups: ModelGroups) -> list[LayerJoin]:
    """Every conv/linear of ``model`` with the groups it joins (one forward pass counts the MACs)."""
    macs = {name: runs[-1].macs(per_sample=True) for name, runs in layer_calls(model, input_shape).items()}
    consumes = {layer: g.name for g in groups.groups for layer in g.consumers}
    produces = {layer: g.name for g in groups.groups for layer in g.producers}
    return [LayerJoin(layer, consumes.get(layer), produces.get(layer), n) for layer, n in macs.items()]


def group_resolutions(model: nn.Module, input_shape: tuple[int, ...], groups: ModelGroups) -> dict[str, str]:
    """``{group: "HxW"}``: the spatial size of the maps a group's producers write (the largest if
    they differ; ``"1"`` for a linear's features). Groups at one resolution form a stage of the
    network, each with its scale in the prediction (:mod:`trtprune.lut.predict`)."""
    import torch

    producers = {layer for g in groups.groups for layer in g.producers}
    sizes = {name: runs[-1].output_shape[2:] for name, runs in layer_calls(model, input_shape, producers).items()}

    def area(size: tuple[int, ...]) -> int:
        return int(torch.tensor(size).prod()) if size else 1

    out = {}
    for g in groups.groups:
        seen = [sizes[layer] for layer in g.producers if layer in sizes]
        size = max(seen, key=area) if seen else ()
        out[g.name] = "x".join(map(str, size)) or "1"
    return out
