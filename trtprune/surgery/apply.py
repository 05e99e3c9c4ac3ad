"""Applying a plan: physically (hard: layers shrink) or as masks (soft: channels zeroed).

Hard pruning is Torch-Pruning's surgery on each group. Soft masks zero every
producer-side parameter slice of the removed channels (conv/linear filters and
biases, norm scales and shifts) and keep them at zero during fine-tuning with
gradient hooks, so the masked network computes what the hard-pruned one does
(exactly, for networks whose activations map 0 to 0 and whose norms act per
channel; LayerNorm/GroupNorm over channels see the zeros and differ).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from trtprune.core.errors import UnsupportedModelError
from trtprune.surgery.layer_cut import cut, removed_slices
from trtprune.surgery.plan import _expand_local

if TYPE_CHECKING:
    import torch
    from torch import nn

    from trtprune.graph.groups import Member, ModelGroups
    from trtprune.surgery.plan import Plan

log = logging.getLogger(__name__)

_NORMS = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "LayerNorm2d")


def _is_norm(kind: str) -> bool:
    return kind.startswith(_NORMS)


def _pruned(groups: ModelGroups, plan: Plan) -> dict[str, list[int]]:
    out = {}
    for g in groups.groups:
        kept = plan.groups.get(g.name)
        if kept is not None and len(kept) < g.channels:
            keep = set(kept)
            out[g.name] = [i for i in range(g.channels) if i not in keep]
    return out


def apply_plan(groups: ModelGroups, plan: Plan, model_name: str) -> nn.Module:
    """Physically remove the channels ``plan`` drops; returns the (same, now smaller) model.

    ``groups`` is consumed: its member indices describe the unpruned model. Every layer is cut once
    (:mod:`trtprune.surgery.layer_cut`), then the model is run once on the traced input's shape.
    """

    plan.validate(groups, model_name)
    cut(groups.model, groups, removed_slices(groups, plan.groups))
    _check_runs(groups.model, tuple(groups.example_input.shape), model_name)
    return groups.model


def _check_runs(model: nn.Module, shape: tuple[int, ...], model_name: str) -> None:
    """Run the pruned model once; a layer that keeps an old channel count in Python fails here."""
    import torch

    stack: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_pre_hook(lambda mod, _a: stack.append(names[mod])) for m in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(*shape))
    except Exception as exc:  # a shape error: the layer that raised is the last one entered
        where = stack[-1] if stack and stack[-1] else type(model).__name__
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsupportedModelError(
            f"pruned {model_name} does not run: {first} (at layer {where!r}); a layer before it keeps a channel "
            "count in Python that trtprune cannot update"
        ) from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)


def _param_slices(module: nn.Module, member: Member) -> list[tuple[torch.nn.Parameter, int, list[int]]]:
    """(parameter, dim, indices) removed when ``member``'s channels go."""
    import torch

    if isinstance(module, torch.nn.Parameter):
        return []
    idxs = list(member.idxs)
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    transposed = bool(getattr(module, "transposed", False))
    groups_ = getattr(module, "groups", 1)
    out: list[tuple[torch.nn.Parameter, int, list[int]]] = []
    depthwise = groups_ > 1 and groups_ == getattr(module, "in_channels", -1)
    if member.role == "out" or _is_norm(member.kind) or depthwise or member.kind == "PReLU":
        if isinstance(weight, torch.nn.Parameter) and (member.kind != "PReLU" or weight.numel() > 1):
            out.append((weight, 1 if transposed else 0, idxs))
        if isinstance(bias, torch.nn.Parameter):
            out.append((bias, 0, idxs))
    elif isinstance(weight, torch.nn.Parameter) and weight.dim() >= 2:
        dim = 0 if transposed else 1
        if groups_ > 1:
            idxs = sorted({i % weight.shape[dim] for i in idxs})
        out.append((weight, dim, idxs))
    return out


def _member_slices(groups: ModelGroups, plan: Plan, producers_only: bool, model: nn.Module | None = None):
    """(parameter, dim, indices) of every slice ``plan`` removes, of ``model`` (default: the
    model ``groups`` was traced on; or a copy of it)."""
    model = groups.model if model is None else model
    for name, pruned in _pruned(groups, plan).items():
        drop = set(pruned)
        for m in groups.by_name[name].members:
            if producers_only and m.role != "out" and not _is_norm(m.kind):
                continue
            pairs = [(i, r) for i, r in zip(m.idxs, m.root_idxs, strict=True) if r in drop]
            if pairs and m.kind == "Parameter":  # a bare parameter (e.g. a layer scale): its pruned dim
                yield model.get_parameter(m.layer), m.dim, [p[0] for p in pairs]
                continue
            module = model.get_submodule(m.layer)
            if pairs:
                sub = replace(m, idxs=tuple(p[0] for p in pairs), root_idxs=tuple(p[1] for p in pairs))
                yield from _param_slices(module, sub)


def expected_param_count(groups: ModelGroups, plan: Plan) -> int:
    """Parameters the model has once ``plan`` is applied, derived from the dependency graph alone."""
    kept: dict[int, list[set[int]]] = {}
    params = {id(p): p for p in groups.model.parameters()}
    for param, dim, idxs in _member_slices(groups, plan, producers_only=False):
        dims = kept.setdefault(id(param), [set(range(n)) for n in param.shape])
        dims[dim] -= set(idxs)
    total = 0
    for pid, p in params.items():
        if pid in kept:
            n = 1
            for s in kept[pid]:
                n *= len(s)
            total += n
        else:
            total += p.numel()
    return total


class SoftMask:
    """Channels zeroed in place and held at zero through training (gradient hooks)."""

    def __init__(self, groups: ModelGroups, plan: Plan, model_name: str) -> None:
        import torch

        plan.validate(groups, model_name)
        masks: dict[int, tuple[torch.nn.Parameter, torch.Tensor]] = {}
        for param, dim, idxs in _member_slices(groups, plan, producers_only=True):
            if id(param) not in masks:
                masks[id(param)] = (param, torch.ones_like(param))
            index = [slice(None)] * param.dim()
            index[dim] = torch.as_tensor(idxs, dtype=torch.long)
            masks[id(param)][1][tuple(index)] = 0
        self._masks = list(masks.values())
        self._handles = [p.register_hook(lambda g, m=m: g * m) for p, m in self._masks]
        self.apply()

    def apply(self) -> None:
        """Re-zero the masked slices (e.g. after an optimiser step with momentum)."""
        import torch

        with torch.no_grad():
            for p, m in self._masks:
                p.mul_(m)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def zero_removed(groups: ModelGroups, plan: Plan, model: nn.Module) -> None:
    """Zero every slice of the channels ``plan`` removes in ``model`` (a copy of the model ``groups``
    was traced on), consumers' input slices included: removed channels then weigh nothing."""
    import torch

    with torch.no_grad():
        for param, dim, idxs in _member_slices(groups, plan, producers_only=False, model=model):
            param.index_fill_(dim, torch.as_tensor(idxs, dtype=torch.long), 0.0)


def apply_masks(groups: ModelGroups, plan: Plan, model_name: str) -> SoftMask:
    """Zero the channels ``plan`` drops, keeping every layer's shape (for staged pruning)."""
    return SoftMask(groups, plan, model_name)


def prune_copy(model: nn.Module, groups: ModelGroups, widths: dict[str, int]) -> nn.Module:
    """A copy of ``model`` (the unpruned model ``groups`` was traced on, or a sub-graph of it
    keeping its layer names) with each listed group cut to its first ``widths[g]`` channels.

    Replays Torch-Pruning's per-layer pruning functions on the groups' recorded members (each layer
    cut once) instead of re-tracing a dependency graph per copy: the cheap path for latency candidates.
    """
    import copy

    import numpy as np

    kept = {}
    for name, width in widths.items():
        group = groups.by_name[name]
        if width < group.channels:
            kept[name] = _expand_local(group, np.arange(max(1, width // group.partitions)))
    out = copy.deepcopy(model)
    cut(out, groups, removed_slices(groups, kept))
    return out
