"""Cutting layers: every channel a plan removes, taken out of each layer in one pass.

Each layer is cut once, by the union of its members' removed indices over all groups, with
Torch-Pruning's own per-layer pruning functions. Cutting group after group instead (TP's
``Group.prune``) re-derives each group on the already-shrunk graph, where a concat's or a split's
offsets have moved, and a layer fed by two groups (the conv after a concat) gets indices of the
unpruned model applied to a smaller one.

A few layers keep a channel count in Python as well as in their weights (a split size, a slice
end); ``FIXUPS`` updates those attributes after the cut, keyed by the layer's class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from trtprune.graph.groups import ModelGroups

log = logging.getLogger(__name__)

Removed = dict[tuple[str, str], set[int]]  # (layer, role) -> its removed indices


def removed_slices(groups: ModelGroups, kept: dict[str, Iterable[int]]) -> Removed:
    """(layer, role) -> the layer's own indices that go when each listed group keeps ``kept[g]``."""
    removed: Removed = {}
    for name, keep in kept.items():
        group = groups.by_name[name]
        keep = set(keep)
        if len(keep) >= group.channels:
            continue
        for m in group.members:
            idxs = {i for i, r in zip(m.idxs, m.root_idxs, strict=True) if r not in keep}
            if idxs:
                removed.setdefault((m.layer, m.role), set()).update(idxs)
    return removed


def cut(model: nn.Module, groups: ModelGroups, removed: Removed) -> None:
    """Remove ``removed`` from ``model`` in place (the model ``groups`` was traced on, a copy of it,
    or a sub-graph keeping its layer names: layers it lacks are skipped)."""
    import torch

    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    kinds = {m.layer: m for g in groups.groups for m in g.members}
    for (layer, role), idxs in sorted(removed.items()):
        member = kinds[layer]
        if member.kind == "Parameter":
            if layer in params:
                _cut_parameter(model, groups, layer, params[layer], member.dim, sorted(idxs))
            continue
        module = modules.get(layer)
        if module is None:
            continue
        pruner = groups.graph.get_pruner_of_module(module)
        fn = pruner.prune_out_channels if role == "out" else pruner.prune_in_channels
        fn(module, sorted(idxs))
    for name, module in modules.items():
        fix = FIXUPS.get(f"{type(module).__module__}.{type(module).__qualname__}")
        if fix is not None:
            with torch.no_grad():
                fix(module, name, removed)


def _cut_parameter(model: nn.Module, groups: ModelGroups, name: str, param, dim: int | None, idxs: list[int]) -> None:
    from torch_pruning import ops

    pruner = groups.graph.REGISTERED_PRUNERS[ops.OPTYPE.PARAMETER]
    pruner.pruning_dim = dim if dim is not None else -1
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, pruner.prune_out_channels(param, idxs))


# layers that keep channel counts in Python ----------------------------------------------------------------


def _kept_below(removed: Removed, layer: str, role: str, bound: int) -> int:
    """How many of ``layer``'s first ``bound`` channels (of ``role``) survive the cut."""
    return bound - sum(1 for i in removed.get((layer, role), ()) if i < bound)


def _mixed_conv(m: nn.Module, name: str, removed: Removed) -> None:
    """timm MixedConv2d splits its input by ``splits`` (one chunk per kernel size)."""
    convs = list(m.values())
    m.splits = [c.in_channels for c in convs]
    m.in_channels, m.out_channels = sum(m.splits), sum(c.out_channels for c in convs)


def _csp_stage(m: nn.Module, name: str, removed: Removed) -> None:
    """timm CrossStage/CrossStage3 split ``conv_exp``'s output in two halves of ``expand_chs // 2``."""
    m.expand_chs = m.conv_exp.conv.out_channels


def _res2net(m: nn.Module, name: str, removed: Removed) -> None:
    """Res2Net (and DLA's) Bottle2neck split ``conv1``'s output in ``scale`` chunks of ``width``."""
    m.width = m.conv1.out_channels // m.scale


def _dpn(m: nn.Module, name: str, removed: Removed) -> None:
    """DPN's DualPathBlock slices its residual part at ``num_1x1_c``."""
    if hasattr(m.c1x1_c, "conv"):
        m.num_1x1_c = _kept_below(removed, f"{name}.c1x1_c.conv", "out", m.num_1x1_c)
    else:  # the 'b' variant: separate residual and dense convs
        m.num_1x1_c = m.c1x1_c1.out_channels


def _rexnet(m: nn.Module, name: str, removed: Removed) -> None:
    """ReXNet's LinearBottleneck adds its input to the first ``in_channels`` output channels."""
    first = m.conv_exp if m.conv_exp is not None else m.conv_dw
    m.in_channels, m.out_channels = first.conv.in_channels, m.conv_pwl.conv.out_channels


def _ghost(m: nn.Module, name: str, removed: Removed) -> None:
    """GhostNet's GhostModule keeps the first ``out_chs`` of [primary, cheap] channels."""
    primary = m.primary_conv[0]
    old_primary = primary.out_channels + len(removed.get((f"{name}.primary_conv.0", "out"), ()))
    cheap_kept = _kept_below(removed, f"{name}.cheap_operation.0", "out", max(0, m.out_chs - old_primary))
    m.out_chs = primary.out_channels + cheap_kept


def _selective_kernel(m: nn.Module, name: str, removed: Removed) -> None:
    """timm's SelectiveKernel splits its input in ``num_paths`` chunks of ``in_channels // num_paths``."""
    per_path = m.paths[0].conv.in_channels
    m.in_channels = per_path * m.num_paths if m.split_input else per_path


FIXUPS: dict[str, Callable[[nn.Module, str, Removed], None]] = {
    "timm.layers.selective_kernel.SelectiveKernel": _selective_kernel,
    "timm.layers.mixed_conv2d.MixedConv2d": _mixed_conv,
    "timm.models.cspnet.CrossStage": _csp_stage,
    "timm.models.cspnet.CrossStage3": _csp_stage,
    "timm.models.res2net.Bottle2neck": _res2net,
    "timm.models.dla.DlaBottle2neck": _res2net,
    "timm.models.dpn.DualPathBlock": _dpn,
    "timm.models.rexnet.LinearBottleneck": _rexnet,
    "timm.models.ghostnet.GhostModule": _ghost,
    "timm.models.ghostnet.GhostModuleV2": _ghost,
}
