"""``block`` mode: the sub-graph a group touches, cut out of the network at its real input shapes.

The network is traced with ``torch.fx``; the block is every node that is both
downstream of one of the group's producers and upstream of one of its consumers
(so the producers, consumers, norms, activations and adds between them). Values
entering the block from outside become inputs with their recorded shapes (or
constants, for sizes and other non-tensors); values leaving it become outputs,
so no work inside is dead. Its layers keep their names, so the group's recorded
members prune it exactly like the whole network (:func:`trtprune.surgery.apply.prune_copy`);
it is exported with several inputs.

Blocks repeat (a ResNet stage's identical basic blocks): :func:`signature` is equal
for two blocks whose graphs, layer configurations, input shapes and cut channels
are the same, so one measured curve serves them all.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trtprune.core.errors import UnsupportedModelError
from trtprune.graph.traced_part import traced_part

if TYPE_CHECKING:
    import torch
    from torch import fx, nn

    from trtprune.graph.groups import ChannelGroup

log = logging.getLogger(__name__)


class Block:
    """A group's sub-graph as a runnable module plus example inputs of the real shapes."""

    def __init__(self, module: fx.GraphModule, inputs: tuple[torch.Tensor, ...], group: ChannelGroup) -> None:
        self.module = module
        self.inputs = inputs
        self.group = group


class _Recorder:
    """Runs the traced graph once and keeps every node's value (tensors and sizes)."""

    def __init__(self, gm: fx.GraphModule, x: torch.Tensor) -> None:
        import torch
        from torch.fx import Interpreter

        values: dict[str, Any] = {}

        class Rec(Interpreter):
            def run_node(self, n):  # noqa: D102
                out = super().run_node(n)
                values[n.name] = out.detach() if isinstance(out, torch.Tensor) else out
                return out

        with torch.no_grad():
            Rec(gm).run(x)
        self.values = values


def trace(model: nn.Module, example: torch.Tensor) -> tuple[fx.GraphModule, dict[str, Any]]:
    """Trace ``model`` (its traced part: a detector's network) with torch.fx and record every node's value on
    ``example``."""
    import torch.fx
    from torch import nn

    weighted = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)

    class Tracer(torch.fx.Tracer):
        # subclasses of conv/linear/norm (e.g. same-padding convs) stay whole so they keep their names
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, weighted) or super().is_leaf_module(m, qualname)

    try:
        root = copy.deepcopy(traced_part(model)).eval()  # a detector's network view (its layers' own names)
        gm = torch.fx.GraphModule(root, Tracer().trace(root))
    except Exception as exc:  # fx raises many types on dynamic control flow
        raise UnsupportedModelError(
            f"block mode cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); use --mode network"
        ) from None
    return gm, _Recorder(gm, example).values


def extract_block(gm: fx.GraphModule, values: dict[str, Any], group: ChannelGroup) -> Block:
    """Cut ``group``'s sub-graph out of the traced network."""
    import torch
    import torch.fx

    nodes = list(gm.graph.nodes)
    producers = [n for n in nodes if n.op == "call_module" and n.target in group.producers]
    consumers = [n for n in nodes if n.op == "call_module" and n.target in group.consumers]
    if not producers or not consumers:
        raise UnsupportedModelError(
            f"block mode cannot find group {group.name!r}'s layers in the traced graph; use --mode network"
        )
    down = _closure(producers, lambda n: n.users)
    up = _closure(consumers, lambda n: n.all_input_nodes)
    inside = [n for n in nodes if n in down and n in up and n.op not in ("placeholder", "output")]
    inside_set = set(inside)

    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, Any] = {}
    inputs: list[torch.Tensor] = []

    def outer(n: torch.fx.Node) -> Any:
        if n in env:
            return env[n]
        value = values[n.name]
        if n.op == "get_attr":
            env[n] = graph.get_attr(n.target)
        elif isinstance(value, torch.Tensor):
            env[n] = graph.placeholder(f"in{len(inputs)}")
            inputs.append(torch.randn_like(value))
        else:
            env[n] = value  # sizes and other constants are baked in
        return env[n]

    for n in inside:
        for arg in n.all_input_nodes:
            if arg not in inside_set:
                outer(arg)
        env[n] = graph.node_copy(n, lambda a: env[a])
    outs = [env[n] for n in inside if any(u not in inside_set for u in n.users)]
    graph.output(tuple(outs) if len(outs) > 1 else outs[0])
    module = torch.fx.GraphModule(gm, graph)
    return Block(module, tuple(inputs), group)


def signature(block: Block, cut: Sequence[ChannelGroup] | None = None) -> str:
    """A key equal for two blocks that build the same engine at every width of the cut group(s).

    It covers the graph (node kinds, wiring, each layer's full configuration, constant
    shapes), the input shapes and dtypes (the widths of everything around the block) and,
    per cut group, its width, partitions and exactly which channels of which layer it
    removes. Layer names and weight values are left out: they do not change latency.
    """
    from torch import fx

    cut = [block.group] if cut is None else list(cut)
    nodes = list(block.module.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    layer_index = {n.target: i for i, n in enumerate(nodes) if n.op == "call_module"}

    def wiring(a: Any) -> str:
        return repr(fx.node.map_arg(a, lambda n: f"%{index[n]}"))

    parts = [f"input {tuple(x.shape)} {x.dtype}" for x in block.inputs]
    for n in nodes:
        if n.op == "call_module":
            what = repr(block.module.get_submodule(n.target))  # its configuration, not its name
        elif n.op == "get_attr":
            value = functools.reduce(getattr, n.target.split("."), block.module)
            what = f"{type(value).__name__} {tuple(getattr(value, 'shape', ()))}"
        elif n.op == "call_function":
            what = f"{getattr(n.target, '__module__', '')}.{getattr(n.target, '__qualname__', repr(n.target))}"
        else:
            what = str(n.target) if n.op == "call_method" else ""
        parts.append(f"{n.op} {what} {wiring(n.args)} {wiring(n.kwargs)}")
    for k, group in enumerate(cut):
        parts.append(f"cut {k}: {group.channels} channels, {group.partitions} partitions")
        members = sorted(
            (layer_index[m.layer], m.role, m.kind, tuple(sorted(zip(m.root_idxs, m.idxs, strict=True))))
            for m in group.members
            if m.layer in layer_index
        )
        parts += [f"cut {k}: {m}" for m in members]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _closure(start, step) -> set:
    seen, stack = set(start), list(start)
    while stack:
        for nxt in step(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
