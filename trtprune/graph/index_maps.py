"""Torch-Pruning's dependency graph, with the channel index mappings it gets wrong set exactly.

Torch-Pruning (TP) traces the autograd graph and maps channel indices across concat, split, slice
and reshape nodes, inferring their sizes by walking the graph. That inference fails on patterns
common in timm and torchvision CNNs:

- a split whose output also feeds a residual add (CSP, Res2Net): TP pairs split outputs with
  consumers by position in its node list, not by output number, so chunks land on the wrong layers;
- concats whose input widths it cannot infer (DPN, ReXNet): offsets become None or wrong, and
  TP's group search then never terminates;
- a channel shuffle (view, transpose, view): read as a flatten, TP divides by zero;
- a runtime-sized split (``chunk(2)``, ``split(n)``) or a shuffle only stays the same function
  after pruning if every chunk keeps the same positions, a tie TP does not know;
- a one-channel map broadcast over the channels (spatial attention): TP ties its single channel
  to every channel of the other operand.

The autograd graph TP traced holds every tensor's exact shape (``grad_fn._input_metadata``) and
every edge's output number, so here we run TP's build steps, set those mappings from the exact
shapes (with TP's own mapping classes where they fit), and record the nodes whose channel mapping
nobody can vouch for (``unsafe``): the groups that reach them are not pruned.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One input edge of a node: the producing node, its output number and the tensor's shape."""

    node: Any
    nr: int
    shape: tuple[int, ...]


@dataclass
class RepairedGraph:
    """TP's graph plus, per node it cannot vouch for, the reason (a channel mapping is unknown)."""

    graph: Any
    unsafe: dict[Any, str] = field(default_factory=dict)


# index mappings (TP calls them on lists of _HybridIndex(idx, root_idx)) ------------------------------


class _Drop:
    """No channel tie across this edge (a one-channel map broadcast over all channels)."""

    def __call__(self, idxs: list) -> list:
        return []


class _Chunk:
    """Output ``k`` of a split into equal chunks of ``size``, sized at run time (``chunk``,
    ``split(n)``): after pruning every chunk must keep the same positions, so an index of any
    chunk reaches the same position in every output (reverse: the position in chunk ``k``)."""

    def __init__(self, size: int, k: int, reverse: bool) -> None:
        self.size, self.k, self.reverse = size, k, reverse

    def __call__(self, idxs: list) -> list:
        from torch_pruning._helpers import _HybridIndex

        if self.reverse:
            return [_HybridIndex(i.idx + self.k * self.size, i.root_idx) for i in idxs]
        return [_HybridIndex(i.idx % self.size, i.root_idx) for i in idxs]


class _Permute:
    """A channel permutation (a shuffle): input channel ``i`` lands at ``position[i]``. The view
    into ``blocks`` blocks keeps its meaning after pruning only if every block keeps the same
    positions, so each index also reaches its block-mates."""

    def __init__(self, source: list[int], blocks: int, reverse: bool) -> None:
        n = len(source)
        self.size = n // blocks
        self.blocks = blocks
        self.source = source  # output j holds input source[j]
        self.position = [0] * n
        for j, i in enumerate(source):
            self.position[i] = j
        self.reverse = reverse

    def __call__(self, idxs: list) -> list:
        from torch_pruning._helpers import _HybridIndex

        out = []
        for h in idxs:
            i = self.source[h.idx] if self.reverse else h.idx
            mates = [p * self.size + i % self.size for p in range(self.blocks)]
            out += [_HybridIndex(m if self.reverse else self.position[m], h.root_idx) for m in mates]
        return out


# shapes from the autograd graph ---------------------------------------------------------------------


def _shape(grad_fn: Any, nr: int = 0) -> tuple[int, ...] | None:
    try:
        if hasattr(grad_fn, "variable"):  # AccumulateGrad: a leaf parameter
            return tuple(grad_fn.variable.shape)
        return tuple(int(s) for s in grad_fn._input_metadata[nr].shape)
    except (AttributeError, IndexError, RuntimeError, TypeError):
        return None


def _dim(value: Any, rank: int) -> int:
    value = int(value)
    return value + rank if value < 0 else value


def _name(node: Any) -> str:
    grad_fn = getattr(node, "grad_fn", None)
    name = grad_fn.name() if grad_fn is not None and hasattr(grad_fn, "name") else type(node.module).__name__
    return name.rstrip("0123456789")


class _Repair:
    """The repair of one traced graph: run :meth:`before` TP's index-mapping step and :meth:`after`."""

    def __init__(self, graph: Any, calls: dict[Any, Any] | None = None) -> None:
        self.graph = graph
        self.unsafe: dict[Any, str] = {}
        self.owned: set[Any] = set()  # nodes whose edge mappings we set exactly
        nodes = graph.module2node
        # a layer called several times (a head shared by pyramid levels) is one node for all its calls
        self.by_grad_fn = {fn: nodes[m] for fn, m in (calls or {}).items() if m in nodes}
        self.by_grad_fn.update({n.grad_fn: n for n in nodes.values() if n.grad_fn is not None})
        self.entries = {n: self._entries(n) for n in graph.module2node.values()}

    def _entries(self, node: Any) -> list[Entry] | None:
        """The node's input edges in TP's order (None where they cannot be matched to TP's inputs)."""
        grad_fn = node.grad_fn
        if grad_fn is None or not hasattr(grad_fn, "next_functions"):
            return [] if not node.inputs else None
        out = []
        for fn, nr in grad_fn.next_functions:
            src = self.by_grad_fn.get(fn)
            if src is not None:
                shape = _shape(fn, nr)
                if shape is None:
                    return None
                out.append(Entry(src, nr, shape))
        if [e.node for e in out] != list(node.inputs):
            return self._reused(node, out)
        return out

    def _reused(self, node: Any, first: list[Entry]) -> list[Entry] | None:
        """A layer called several times (a detector head shared by all pyramid levels): TP's node holds
        every call's inputs, the grad_fn only the first call's. Each call maps channel i to channel i
        as the first does, so every input takes the first call's entry (None if that does not fit)."""
        n = len(first)
        if node.module not in self.graph._module2name or n == 0 or len(node.inputs) % n:
            return None
        if [e.node for e in first] != list(node.inputs[:n]):
            return None
        return [Entry(src, first[k % n].nr, first[k % n].shape) for k, src in enumerate(node.inputs)]

    # repairs before TP's index mapping ----------------------------------------------------------------
    def before(self) -> None:
        from torch_pruning import ops

        for node in list(self.graph.module2node.values()):
            if node.type == ops.OPTYPE.CONCAT:
                self._concat_sizes(node)
            elif node.type == ops.OPTYPE.SPLIT:
                self._split_sizes(node)
            elif node.type == ops.OPTYPE.SLICE:
                _clamp_slice(node)
            elif node.type == ops.OPTYPE.RESHAPE and node not in self.owned:
                self._shuffle(node)

    def _concat_sizes(self, node: Any) -> None:
        entries, out = self.entries[node], _out_shape(node)
        if entries is None or out is None:
            self.unsafe[node] = "a concat whose inputs cannot be matched"
            return
        if _dim(node.grad_fn._saved_dim, len(out)) != 1:
            return  # not on channels: TP leaves the indices as they are, which is right
        sizes = [e.shape[1] for e in entries]
        node.module.concat_sizes = sizes
        node.module.offsets = [0, *[sum(sizes[: k + 1]) for k in range(len(sizes))]]
        node.enable_index_mapping = False
        self.owned.add(node)

    def _split_sizes(self, node: Any) -> None:
        layout = _split_layout(node.grad_fn)
        if isinstance(layout, str):
            self.unsafe[node] = layout
            return
        if layout is None:
            return  # not on channels
        sizes, uniform = layout
        node.module.split_sizes = sizes
        node.module.offsets = [0, *[sum(sizes[: k + 1]) for k in range(len(sizes))]]
        node.module.uniform = uniform
        node.enable_index_mapping = False
        self.owned.add(node)

    def _shuffle(self, first: Any) -> None:
        """A chain view -> transpose/permute/clone -> view between two (B, C, H, W) tensors that
        permutes the channels (ShuffleNet): TP must not touch the chain, and its edges map by the permutation."""
        from torch_pruning import ops

        entries = self.entries[first]
        if not entries or len(entries) != 1 or len(entries[0].shape) != 4:
            return
        chain = _view_chain(first, entries[0].shape, _out_shape)
        found = None if chain is None else _channel_permutation(chain, entries[0].shape, _out_shape)
        if found is None:
            return
        source, blocks = found
        for n in chain:
            n.type = ops.OPTYPE.ELEMENTWISE  # TP's reshape inference must not touch the chain
            self.owned.add(n)
        second = chain[1]
        _set(_out_dep(second, 0), 0, _Permute(source, blocks, reverse=False))
        _set(_in_dep(second, 0), 0, _Permute(source, blocks, reverse=True))
        log.debug("channel shuffle of %d channels in %d blocks", len(source), blocks)

    # TP's own index mapping, node by node --------------------------------------------------------------
    def run_tp(self) -> None:
        updaters = _tp_updaters()
        for node in self.graph.module2node.values():
            update = updaters.get(node.type)
            if update is None or node in self.owned:
                continue
            try:
                update(self.graph, node)
            except Exception as exc:  # TP's shape inference raises many types
                self.unsafe[node] = f"torch-pruning cannot map its channels ({type(exc).__name__})"

    # repairs after TP's index mapping ----------------------------------------------------------------
    def after(self) -> None:
        from torch_pruning import ops
        from torch_pruning.dependency.index_mapping import _ConcatIndexMapping, _SplitIndexMapping

        inside = _inside_linear(self.graph)
        for node in self.graph.module2node.values():
            if node in self.unsafe:
                continue
            if node in inside:
                _clear_flatten(node)
                continue
            if node.type == ops.OPTYPE.CONCAT and node in self.owned:
                offsets = node.module.offsets
                for k in range(len(node.inputs)):
                    _set(_in_dep(node, k), 1, _ConcatIndexMapping(offsets[k : k + 2], reverse=True))
                    _set(_out_dep(node, k), 1, _ConcatIndexMapping(offsets[k : k + 2], reverse=False))
            elif node.type == ops.OPTYPE.SPLIT and node in self.owned:
                self._split_edges(node, _SplitIndexMapping)
            elif node.type == ops.OPTYPE.RESHAPE:
                self._check_reshape(node)
            elif node.type in (ops.OPTYPE.ELEMENTWISE, ops.OPTYPE.EXPAND) and node not in self.owned:
                self._elementwise(node)
            elif node.type == ops.OPTYPE.UNBIND:
                self.unsafe[node] = "an unbind"

    def _split_edges(self, split: Any, mapping: Any) -> None:
        offsets, uniform = split.module.offsets, split.module.uniform
        seen: dict[Any, int] = {}
        for j, consumer in enumerate(split.outputs):
            occurrence = seen.get(consumer, 0)
            seen[consumer] = occurrence + 1
            entries = self.entries.get(consumer)
            slots = [k for k, e in enumerate(entries or []) if e.node is split]
            if entries is None or occurrence >= len(slots):
                self.unsafe[split] = "a split whose outputs cannot be matched to their consumers"
                return
            k = slots[occurrence]
            nr = entries[k].nr
            fwd, back = split.dependencies[len(split.inputs) + j], _in_dep(consumer, k)
            assert fwd.target is consumer
            if uniform:
                _set(fwd, 0, _Chunk(uniform, nr, reverse=False))
                _set(back, 0, _Chunk(uniform, nr, reverse=True))
            else:
                _set(fwd, 0, mapping(offsets[nr : nr + 2], reverse=False))
                _set(back, 0, mapping(offsets[nr : nr + 2], reverse=True))

    def _check_reshape(self, node: Any) -> None:
        entries, out = self.entries[node], _out_shape(node)
        if not entries or out is None:
            self.unsafe[node] = _unmatched(node, "a reshape of unknown shape")
            return
        shape = entries[0].shape
        if [d for d in shape if d != 1] == [d for d in out if d != 1] or (
            len(shape) >= 2 and len(out) >= 2 and shape[:2] == out[:2]
        ):
            _clear_flatten(node)  # the channel axis stays: identity, whatever TP inferred
            return
        if len(out) == 2 and len(shape) >= 2 and out[0] == shape[0] and out[1] == math.prod(shape[1:]):
            return  # a flatten before a linear layer: TP's flatten mapping
        self.unsafe[node] = f"a reshape {list(shape)} -> {list(out)} of the channel axis"

    def _elementwise(self, node: Any) -> None:
        entries, out = self.entries[node], _out_shape(node)
        name = _name(node)
        if entries is None or out is None:
            if node.inputs:
                self.unsafe[node] = _unmatched(node, f"{name}, whose inputs cannot be matched")
            return
        reason = _channel_change(node, name, entries, out)
        if reason:
            self.unsafe[node] = reason
            return
        for k, e in enumerate(entries):
            padded = (1,) * (len(out) - len(e.shape)) + e.shape
            if len(out) >= 2 and len(padded) == len(out) and padded[1] == 1 and out[1] > 1:
                _set(_in_dep(node, k), 0, _Drop())
                _set(_out_dep(node, k), 0, _Drop())


def _out_shape(node: Any) -> tuple[int, ...] | None:
    """The shape of the tensor ``node`` produced (None where autograd kept none)."""
    return _shape(node.grad_fn) if node.grad_fn is not None else None


def _in_dep(node: Any, k: int) -> Any:
    """The dependency from ``node`` to its ``k``-th input (TP appends input deps first, in order)."""
    dep = node.dependencies[k]
    assert dep.target is node.inputs[k]
    return dep


def _out_dep(node: Any, k: int) -> Any:
    """The dependency from ``node.inputs[k]`` to ``node`` (the matching occurrence, for repeats)."""
    src = node.inputs[k]
    occurrence = sum(1 for j in range(k) if node.inputs[j] is src)
    outs = [d for d in src.dependencies[len(src.inputs) :] if d.target is node]
    return outs[occurrence]


def _set(dep: Any, slot: int, mapping: Any) -> None:
    """Set the edge ``dep``'s index mapping in ``slot`` (0: forward, 1: backward, as TP stores them)."""
    dep.index_mapping[slot] = mapping


def _tp_updaters() -> dict[Any, Callable[[Any, Any], None]]:
    """TP's index-mapping step per op type (the one step whose guesses we repair around)."""
    import torch_pruning.dependency.index_mapping as im
    from torch_pruning import ops

    return {
        ops.OPTYPE.CONCAT: im.update_concat_index_mapping,
        ops.OPTYPE.SPLIT: im.update_split_index_mapping,
        ops.OPTYPE.RESHAPE: im.update_reshape_index_mapping,
        ops.OPTYPE.UNBIND: im.update_unbind_index_mapping,
        ops.OPTYPE.EXPAND: im.update_expand_index_mapping,
        ops.OPTYPE.SLICE: im.update_slice_index_mapping,
    }


def _clear_flatten(node: Any) -> None:
    """Drop TP's flatten mappings on every edge of ``node`` (the channel axis passes through unchanged)."""
    from torch_pruning.dependency.index_mapping import _FlattenIndexMapping

    edges = [*node.dependencies]
    for other in [*node.inputs, *node.outputs]:
        edges += [d for d in other.dependencies if d.target is node]
    for dep in edges:
        for slot, mapping in enumerate(dep.index_mapping):
            if isinstance(mapping, _FlattenIndexMapping):
                dep.index_mapping[slot] = None


def _inside_linear(graph: Any) -> set[Any]:
    """The view and matmul a Linear layer applies to a >2-D input (channels last): TP sees them
    as ops before the layer, which is right, since the layer's own node carries its channels."""
    import torch

    inside = set()
    for node in graph.module2node.values():
        if not isinstance(node.module, torch.nn.Linear):
            continue
        for mm in node.inputs:
            if _name(mm) in ("AddmmBackward", "MmBackward") and mm.outputs == [node]:
                inside.add(mm)
                inside.update(v for v in mm.inputs if v.type == graph.ops.OPTYPE.RESHAPE and v.outputs == [mm])
    return inside


def _split_layout(grad_fn: Any) -> tuple[list[int], int | None] | str | None:
    """A split's chunk sizes on the channel axis and its uniform chunk size (None for explicit sizes);
    None for a split on another axis; a reason where it cannot be mapped."""
    shape = tuple(getattr(grad_fn, "_saved_self_sym_sizes", ()) or ())
    if not shape:
        return "a split of unknown shape"
    if _dim(grad_fn._saved_dim, len(shape)) != 1:
        return None
    channels = int(shape[1])
    if hasattr(grad_fn, "_saved_split_sizes"):
        return [int(s) for s in grad_fn._saved_split_sizes], None
    size = int(grad_fn._saved_split_size)
    if channels % size:
        return f"a split of {channels} channels into chunks of {size} (the last one smaller)"
    return [size] * (channels // size), size


def _clamp_slice(node: Any) -> None:
    """A channel slice's bounds as TP's slice op needs them: non-negative and inside the channels."""
    module, shape = node.module, tuple(getattr(node.grad_fn, "_saved_self_sym_sizes", ()) or ())
    if not shape or _dim(module.dim, len(shape)) != 1:
        return
    n = int(shape[1])
    start = module.start + n if module.start < 0 else module.start
    end = module.end + n if module.end < 0 else module.end
    module.start, module.end = max(0, min(start, n)), max(0, min(end, n))


def _view_chain(first: Any, shape_in: tuple[int, ...], out_shape: Callable[[Any], Any]) -> list[Any] | None:
    """The nodes from a view through transposes, permutes and clones to the view back to ``shape_in``
    (at most 6), or None where the chain is anything else."""
    from torch_pruning import ops

    chain, node = [first], first
    while len(node.outputs) == 1 and len(chain) < 6:
        node = node.outputs[0]
        if node.type != ops.OPTYPE.RESHAPE and _name(node) not in (
            "TransposeBackward",
            "PermuteBackward",
            "CloneBackward",
        ):
            return None
        chain.append(node)
        if node.type == ops.OPTYPE.RESHAPE and out_shape(node) == shape_in:
            break
    return chain if len(chain) >= 3 and out_shape(chain[-1]) == shape_in else None


def _channel_permutation(
    chain: list[Any], shape_in: tuple[int, ...], out_shape: Callable[[Any], Any]
) -> tuple[list[int], int] | None:
    """Replay the chain's ops on a tensor of channel numbers: the channel each output channel comes
    from, and the blocks of the first view; None unless that is a true permutation of the channels."""
    import torch
    from torch_pruning import ops

    b, c, h, w = shape_in
    labels = torch.arange(c, dtype=torch.float64).view(1, c, 1, 1).expand(b, c, h, w)
    for n in chain:
        name = _name(n)
        if n.type == ops.OPTYPE.RESHAPE:
            labels = labels.reshape(out_shape(n))
        elif name == "TransposeBackward":
            labels = labels.transpose(n.grad_fn._saved_dim0, n.grad_fn._saved_dim1)
        elif name == "PermuteBackward":
            labels = labels.permute(*n.grad_fn._saved_dims)
    if labels.shape != shape_in or not bool((labels == labels[:1, :, :1, :1]).all()):
        return None
    source = [int(v) for v in labels[0, :, 0, 0].tolist()]
    if sorted(source) != list(range(c)) or source == list(range(c)):
        return None
    first_view = out_shape(chain[0])
    blocks = int(first_view[1]) if first_view is not None and len(first_view) == 5 else 1
    return None if c % blocks else (source, blocks)


def _unmatched(node: Any, default: str) -> str:
    fns = getattr(node.grad_fn, "next_functions", ())
    if any(f is not None and hasattr(f, "variable") for f, _ in fns):
        return "an op on a layer's weights (e.g. weight standardisation), which pruning changes"
    return default


_CHANNEL_IDENTITY = ("TransposeBackward", "PermuteBackward")
_FUNCTIONAL_WEIGHTS = ("Convolution", "Mm", "Bmm", "Addmm", "Baddbmm", "Matmul", "ChannelShuffle", "PixelShuffle")


def _channel_change(node: Any, name: str, entries: list[Entry], out: tuple[int, ...]) -> str | None:
    """Why an op TP treats as element-wise does not map channel i to channel i (None if it does)."""
    if name in _CHANNEL_IDENTITY:
        return None
    if any(key in name for key in _FUNCTIONAL_WEIGHTS):
        return f"{name} (a functional op on channels, not a layer trtprune can prune)"
    saved = getattr(node.grad_fn, "_saved_dim", None)
    rank = max([len(e.shape) for e in entries] + [len(out)])
    if saved is not None and rank >= 2:
        dims = saved if isinstance(saved, tuple | list) else (saved,)
        if 1 in {_dim(d, rank) for d in dims}:
            return f"{name} over the channel axis"
    for e in entries:
        if len(e.shape) > len(out) and saved is None:
            return f"{name} from {list(e.shape)} to {list(out)}"
        if len(e.shape) != len(out) and saved is not None:
            continue  # a reduction or (un)squeeze away from the channel axis
        padded = (1,) * (len(out) - len(e.shape)) + e.shape
        if len(out) >= 2 and len(padded) == len(out) and padded[1] not in (1, out[1]):
            return f"{name} from {padded[1]} to {out[1]} channels"
    return None


def _record_call(calls: dict[Any, Any]):
    def hook(module: Any, _inputs: Any, output: Any) -> None:
        out = output[0] if isinstance(output, tuple) and output else output
        if getattr(out, "grad_fn", None) is not None:
            calls[out.grad_fn] = module

    return hook


def build_graph(model: nn.Module, example_input: torch.Tensor) -> RepairedGraph:
    """TP's ``build_dependency``, step by step, with the exact mappings set around its index-mapping
    step (its graph is complete before that step, which is the one that fails or guesses)."""
    import torch_pruning as tp
    from torch_pruning.dependency import shape_infer

    graph = tp.DependencyGraph()
    graph.verbose = False
    graph.model = model
    graph._module2name = {m: n for n, m in model.named_modules()}
    graph.ignored_params = []
    graph._param_to_name, graph.unwrapped_parameters = graph._detect_unwrapped_parameters(None)
    calls: dict[Any, Any] = {}  # every call's grad_fn -> its layer (TP's nodes keep only one per layer)
    hooks = [m.register_forward_hook(_record_call(calls)) for m in model.modules() if not any(m.children())]
    try:
        graph.module2node = graph._trace(model, (example_input,), None, output_transform=None)
    finally:
        for h in hooks:
            h.remove()
    graph._build_dependency(graph.module2node)
    shape_infer.init_shape_information(graph)
    repair = _Repair(graph, calls)
    repair.before()
    repair.run_tp()
    repair.after()
    return RepairedGraph(graph, repair.unsafe)


def describe(graph: Any, node: Any) -> str:
    """A node for a user: its op and the nearest named layer before it (or else after it)."""
    names = graph._module2name
    for direction, word in (("inputs", "after"), ("outputs", "before")):
        seen, queue = set(), list(getattr(node, direction))
        while queue:
            n = queue.pop(0)
            if n in seen:
                continue
            seen.add(n)
            if not isinstance(n.module, tuple) and names.get(n.module):
                return f"{_name(node)} {word} {names[n.module]}"
            queue += getattr(n, direction)
    return _name(node)
