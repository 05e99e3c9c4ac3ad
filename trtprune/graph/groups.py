"""Coupled channel groups, discovered on Torch-Pruning's dependency graph.

A group is a set of channels that must be pruned together: the output channels of its
producer layers (convs, linears, norms, the layers tied by residual adds, depthwise convs that
follow their producer) and the matching input channels of its consumer layers. A group is named
after its root layer (plus ``[a:b]``, the root's channel range, where one root layer's channels
form several groups). The groups feeding the network output (the classifier) are never pruned.

Two invariants make every plan a valid network:

- *every member sees every channel of its group*: channels whose layers differ (the two halves
  of a CSP split, the chunks of a Res2Net block, the bands of a ReXNet stage) are separate
  groups, so a group that keeps one channel leaves no layer empty;
- *a group channel is one independent unit*: root channels that cycles tie together (a GhostNet
  residual, a chunk or shuffle that must keep the same positions in every block) are one group
  channel, whose member indices all go together.

Groups whose channels cross an op whose channel mapping is unknown (a reshape of the channel
axis, a softmax over channels, a functional convolution) are not offered; ``pinned`` says why.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from trtprune.core.errors import UnsupportedModelError
from trtprune.graph.index_maps import build_graph, describe
from trtprune.graph.ties import closure, tied_classes
from trtprune.graph.traced_part import traced_part

if TYPE_CHECKING:
    import torch
    from torch import nn

    from trtprune.graph.ties import Closure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """One layer's share of a group: ``role`` 'out' (producer side) or 'in' (consumer side).

    ``idxs[k]`` is the layer's own channel index that carries group channel ``root_idxs[k]``
    (they differ after a concat, a split or a flatten; a tied group channel has several).
    ``dim`` is the pruned dimension of a bare parameter (None for layers).
    """

    layer: str
    role: str
    kind: str
    idxs: tuple[int, ...]
    root_idxs: tuple[int, ...]
    dim: int | None = None


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


@dataclass(frozen=True)
class PinnedGroup:
    """Channels trtprune leaves whole, with the one-line reason."""

    name: str
    layers: tuple[str, ...]
    reason: str


class ModelGroups:
    """The dependency graph of one model and its prunable channel groups."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor) -> None:

        self.model = model
        self.example_input = example_input
        self._names = {m: n for n, m in model.named_modules()}
        try:
            import torch

            with torch.enable_grad():
                repaired = build_graph(model, example_input)
        except Exception as exc:  # tracing runs the model: any error it raises
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise UnsupportedModelError(
                f"cannot trace {type(model).__name__} on input {tuple(example_input.shape)} for channel groups: "
                f"{type(exc).__name__}: {first}; check --input"
            ) from None
        self.graph = repaired.graph
        self._unsafe = repaired.unsafe
        self.groups: list[ChannelGroup] = []
        self.pinned: list[PinnedGroup] = []
        self._discover()
        self.by_name = {g.name: g for g in self.groups}
        for p in self.pinned:
            log.info("group %s is not pruned: %s", p.name, p.reason)

    # discovery -----------------------------------------------------------------------------------------
    def _discover(self) -> None:
        import torch

        graph = self.graph
        roots = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
        bound = self._largest_dim()
        covered: dict[Any, set[int]] = {}
        order = {n: i for i, n in enumerate(self._names.values())}
        found: list[tuple[int, int, ChannelGroup]] = []
        for module, node in list(graph.module2node.items()):
            if not isinstance(module, roots) or graph.get_pruner_of_module(module) is None:
                continue
            n = graph.get_pruner_of_module(module).get_out_channels(module)
            idxs = [i for i in range(n or 0) if i not in covered.get(module, ())]
            if not idxs:
                continue
            c = closure(graph, node, idxs, bound)
            for (target, handler), per in c.reached.items():
                if graph.is_out_channel_pruning_fn(handler):
                    covered.setdefault(target.module, set()).update(per)
            name = self._names[module]
            for first, group in self._split(name, n, idxs, c):
                found.append((order.get(name, len(order)), first, group))
        self.groups = [g for _, _, g in sorted(found, key=lambda t: (t[0], t[1]))]

    def _largest_dim(self) -> int:
        sizes = [1]
        for p in self.model.parameters():
            sizes += list(p.shape)
        return max(sizes)

    def _pin_reason(self, c: Closure) -> str | None:

        for node in c.nodes():
            if node in self._unsafe:
                return f"{self._unsafe[node]} at {describe(self.graph, node)}"
        if c.out_of_range:
            node, idx, n = c.out_of_range[0]
            layer = self._layer_name(node) or describe(self.graph, node)
            return f"its channels reach {layer} on another axis (channel {idx} of its {n})"
        return None

    def _layer_name(self, node: Any) -> str | None:
        if node.type == self.graph.ops.OPTYPE.PARAMETER:
            return self.graph._param_to_name.get(node.module)
        return self._names.get(node.module) if not isinstance(node.module, tuple) else None

    def _members(self, c: Closure, cls: dict[int, int]) -> list[Member]:
        graph, members = self.graph, []
        for (node, handler), per in c.reached.items():
            layer = self._layer_name(node)
            if layer is None or not per:
                continue  # an add, concat or reshape: no weights
            role = "out" if graph.is_out_channel_pruning_fn(handler) else "in"
            is_param = node.type == graph.ops.OPTYPE.PARAMETER
            kind = "Parameter" if is_param else type(node.module).__name__
            idxs = sorted(per)
            members.append(
                Member(
                    layer,
                    role,
                    kind,
                    tuple(idxs),
                    tuple(cls[per[i]] for i in idxs),
                    node.pruning_dim if is_param else None,
                )
            )
        return members

    def _split(self, root: str, n: int, idxs: list[int], c: Closure) -> list[tuple[int, ChannelGroup]]:
        """The groups of one closure: tied root channels merged, then split by which layers they touch."""

        tied = tied_classes(c, idxs)
        rank = {rep: k for k, rep in enumerate(sorted(set(tied.values())))}
        cls = {r: rank[tied[r]] for r in idxs}
        members = self._members(c, cls)
        consumers = [m for m in members if m.role == "in" and m.kind != "BatchNorm2d"]
        if not consumers:
            return []  # feeds the network output (the classifier): never pruned
        touching: dict[int, set[tuple[str, str]]] = {}
        for m in members:
            for k in set(m.root_idxs):
                touching.setdefault(k, set()).add((m.layer, m.role))
        parts: dict[frozenset, list[int]] = {}
        for k in range(len(rank)):
            parts.setdefault(frozenset(touching.get(k, ())), []).append(k)
        reason = self._pin_reason(c)
        whole = len(parts) == 1 and len(idxs) == n
        out = []
        for i, part in enumerate(parts.values()):
            members_of = set(part)
            channels = [r for r in idxs if cls[r] in members_of]
            name = root if whole else _range_name(root, channels, i)
            mine = _restrict(members, part)
            if not any(m.role == "in" and m.kind != "BatchNorm2d" for m in mine):
                continue  # this part only feeds the network output
            partitions, irregular = self._partitions(mine, len(part))
            group = _make_group(name, len(part), partitions, mine)
            if reason or irregular:
                self.pinned.append(PinnedGroup(name, group.layers, reason or irregular))
            else:
                out.append((channels[0], group))
        return out

    def _partitions(self, members: list[Member], channels: int) -> tuple[int, str | None]:
        """The conv-group blocks of a group with grouped convs (or GroupNorms, whose channel groups must
        all keep the same count), or why their blocks cannot be kept alike.

        TP cuts a grouped conv's inputs as the same positions of every block, so a plan must keep the
        same positions in each block of ``channels // partitions`` group channels; that holds only if
        each grouped conv sees the whole group, block by block, in order.
        """
        partitions = 1
        for m in members:
            module = self.model.get_submodule(m.layer) if m.kind != "Parameter" else None
            g = _channel_blocks(module)
            if not isinstance(g, int) or g == 1 or _is_depthwise(module):
                continue
            dim = _block_dim(module, m.role)
            to_group = dict(zip(m.idxs, m.root_idxs, strict=True))
            size = dim // g
            regular = (
                sorted(to_group) == list(range(dim))
                and dim == channels
                and all(to_group[p * size + i] == p * size + to_group[i] for p in range(g) for i in range(size))
            )
            if not regular:
                return (
                    1,
                    f"grouped {m.kind} {m.layer} ({g} groups) takes channels from several groups or in another order",
                )
            partitions = math.lcm(partitions, g)
        if channels % partitions:
            return 1, f"{channels} channels cannot be split over {partitions} conv groups"
        return partitions, None

    # lookups -------------------------------------------------------------------------------------------
    def root_module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name.split("[", 1)[0].split("@", 1)[0])


def _restrict(members: list[Member], part: list[int]) -> list[Member]:
    """The members' shares of group channels ``part``, renumbered 0..len(part)-1."""
    local = {k: j for j, k in enumerate(part)}
    out = []
    for m in members:
        pairs = [(i, local[r]) for i, r in zip(m.idxs, m.root_idxs, strict=True) if r in local]
        if pairs:
            out.append(Member(m.layer, m.role, m.kind, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), m.dim))
    return out


def _make_group(name: str, channels: int, partitions: int, members: list[Member]) -> ChannelGroup:
    return ChannelGroup(
        name=name,
        channels=channels,
        layers=tuple(dict.fromkeys(m.layer for m in members)),
        producers=tuple(dict.fromkeys(m.layer for m in members if m.role == "out")),
        consumers=tuple(dict.fromkeys(m.layer for m in members if m.role == "in" and m.kind != "BatchNorm2d")),
        partitions=partitions,
        members=tuple(members),
    )


def _range_name(root: str, channels: list[int], k: int) -> str:
    """``root[a:b]`` for a contiguous run of the root's channels, else ``root@k``."""
    if channels == list(range(channels[0], channels[-1] + 1)):
        return f"{root}[{channels[0]}:{channels[-1] + 1}]"
    return f"{root}@{k}"


def _channel_blocks(module: Any) -> Any:
    """A grouped conv's groups or a GroupNorm's channel groups (its pruner keeps ``num_groups``)."""
    return getattr(module, "num_groups", None) or getattr(module, "groups", 1)


def _block_dim(module: Any, role: str) -> int:
    if hasattr(module, "num_channels"):
        return module.num_channels
    return module.out_channels if role == "out" else module.in_channels


def _is_depthwise(module: Any) -> bool:
    return getattr(module, "groups", 1) == getattr(module, "in_channels", -1) == getattr(module, "out_channels", -2)


def find_groups(model: nn.Module, input_shape: tuple[int, ...]) -> ModelGroups:
    """Trace ``model`` on a random input of ``input_shape`` and return its channel groups.

    A model with a registered view (a detector: :mod:`trtprune.graph.traced_part`) is traced through
    it; the groups' ``model`` is then that view, which shares the model's layers and names.
    """
    import torch

    was_training = model.training
    model.eval()
    try:
        found = ModelGroups(traced_part(model), torch.randn(*input_shape))
    finally:
        model.train(was_training)
    return found
