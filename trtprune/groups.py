"""Coupled channel groups, discovered by Torch-Pruning's dependency graph.

A group is a set of channels that must be pruned together: the output channels
of its producer layers (convs, linears, norms, the layers tied by residual adds,
depthwise convs that follow their producer) and the matching input channels of
its consumer layers. A group is named after its root layer. The groups feeding
the network output (the classifier) are never pruned.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from trtprune.errors import UnsupportedModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """One layer's share of a group: ``role`` 'out' (producer side) or 'in' (consumer side).

    ``idxs[k]`` is the layer's own channel index that carries group channel ``root_idxs[k]``
    (they differ after a concat or a flatten).
    """

    layer: str
    role: str
    kind: str
    idxs: tuple[int, ...]
    root_idxs: tuple[int, ...]


@dataclass(frozen=True)
class ChannelGroup:
    """A coupled channel group: its stable name, width and member layers."""

    name: str
    channels: int
    layers: tuple[str, ...]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    partitions: int = 1
    members: tuple[Member, ...] = field(default=(), repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("members")
        d["layers"], d["producers"], d["consumers"] = list(self.layers), list(self.producers), list(self.consumers)
        return d


class ModelGroups:
    """The dependency graph of one model and its prunable channel groups."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor) -> None:
        import torch
        import torch_pruning as tp

        self.model = model
        self.example_input = example_input
        self._names = {m: n for n, m in model.named_modules()}
        try:
            with torch.enable_grad():
                self.graph = tp.DependencyGraph().build_dependency(model, example_input, verbose=False)
        except Exception as exc:  # torch-pruning raises many types while tracing
            where = _failing_step(exc)
            if where is not None:
                raise UnsupportedModelError(
                    f"cannot build channel groups for {type(model).__name__}: torch-pruning fails in {where} "
                    f"({type(exc).__name__}: {exc}); the model reshapes or splits its channel axis in a way "
                    "(e.g. a channel shuffle) whose channels cannot be tracked"
                ) from None
            raise UnsupportedModelError(
                f"cannot trace {type(model).__name__} on input {tuple(example_input.shape)} for channel groups: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; check --input"
            ) from None
        self.groups: list[ChannelGroup] = []
        roots = (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Conv3d, torch.nn.Linear)
        for tp_group in self.graph.get_all_groups(root_module_types=roots):
            group = self._describe(tp_group)
            if group is not None:
                self.groups.append(group)
        order = {n: i for i, n in enumerate(self._names.values())}
        self.groups.sort(key=lambda g: order.get(g.name, len(order)))
        self.by_name = {g.name: g for g in self.groups}

    def _describe(self, tp_group: Any) -> ChannelGroup | None:
        graph = self.graph
        members: list[Member] = []
        partitions = 1
        for item in tp_group:
            dep = item.dep
            module = dep.target.module
            name = self._names.get(module) if not isinstance(module, tuple) else None
            if name is None:
                name = graph._param_to_name.get(module) if hasattr(graph, "_param_to_name") else None
            if name is None:
                continue  # an elementwise add, concat or reshape: no weights
            role = "out" if graph.is_out_channel_pruning_fn(dep.handler) else "in"
            kind = type(module).__name__
            members.append(
                Member(name, role, kind, tuple(int(i) for i in item.idxs), tuple(int(i) for i in item.root_idxs))
            )
            groups = getattr(module, "groups", 1)
            if isinstance(groups, int) and groups > 1 and not _is_depthwise(module):
                partitions = math.lcm(partitions, groups)
        root_module = tp_group[0].dep.target.module
        root = self._names[root_module]
        consumers = tuple(m.layer for m in members if m.role == "in" and m.kind != "BatchNorm2d")
        if not consumers:
            return None  # feeds the network output (the classifier): never pruned
        channels = len(tp_group[0].idxs)
        if channels % partitions:
            raise UnsupportedModelError(
                f"group {root}: {channels} channels cannot be split over {partitions} conv groups"
            )
        return ChannelGroup(
            name=root,
            channels=channels,
            layers=tuple(dict.fromkeys(m.layer for m in members)),
            producers=tuple(dict.fromkeys(m.layer for m in members if m.role == "out")),
            consumers=tuple(dict.fromkeys(consumers)),
            partitions=partitions,
            members=tuple(members),
        )

    def root_module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)

    def pruning_group(self, name: str, pruned_idxs: list[int]) -> Any:
        """Torch-Pruning's group that removes ``pruned_idxs`` of group ``name``."""
        module = self.root_module(name)
        pruner = self.graph.get_pruner_of_module(module)
        return self.graph.get_pruning_group(module, pruner.prune_out_channels, pruned_idxs)


def _failing_step(exc: BaseException) -> str | None:
    """The torch-pruning index-mapping step (reshape, split, concat...) that raised, if any."""
    import traceback

    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if "index_mapping" in frame.filename or "shape_infer" in frame.filename:
            return frame.name
    return None


def _is_depthwise(module: Any) -> bool:
    return getattr(module, "groups", 1) == getattr(module, "in_channels", -1) == getattr(module, "out_channels", -2)


def find_groups(model: nn.Module, input_shape: tuple[int, ...]) -> ModelGroups:
    """Trace ``model`` on a random input of ``input_shape`` and return its channel groups."""
    import torch

    was_training = model.training
    model.eval()
    try:
        return ModelGroups(model, torch.randn(*input_shape))
    finally:
        model.train(was_training)
