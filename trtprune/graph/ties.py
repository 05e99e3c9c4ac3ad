"""Which channels are pruned together: the closure of a root layer's channels over TP's graph.

This walks Torch-Pruning's dependency edges and applies their index mappings exactly as its
``get_pruning_group`` does, with two differences that matter for the networks trtprune supports:

- it ties root channels that reach the same layer channel. TP keeps the first one, so when two
  root channels reach the same channel (a GhostNet block adds its input to a cheap depthwise copy
  of its own channels: input channels c and c + n both meet primary channel c), TP prunes one and
  silently takes the other with it. Here those root channels become one *tied* channel;
- it is bounded: an index outside a layer's range is recorded, not followed, so a wrong mapping
  ends in an error naming the layer instead of a search that never terminates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Closure:
    """Per (node, pruning function) reached: layer index -> the first root channel that reached it,
    and the ties: root channels that reach a common layer channel are one (union-find ``parent``)."""

    reached: dict[tuple[Any, Callable], dict[int, int]] = field(default_factory=dict)
    out_of_range: list[tuple[Any, int, int]] = field(default_factory=list)  # (node, index, channels)
    parent: dict[int, int] = field(default_factory=dict)

    def nodes(self) -> set[Any]:
        return {node for node, _ in self.reached}

    def find(self, r: int) -> int:
        while self.parent[r] != r:
            self.parent[r] = self.parent[self.parent[r]]
            r = self.parent[r]
        return r

    def tie(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def channels_of(graph: Any, node: Any, handler: Callable) -> int | None:
    """The channel count ``handler`` prunes on ``node`` (None for ops without weights)."""
    from torch_pruning import ops

    if node.type in (ops.OPTYPE.ELEMENTWISE, ops.OPTYPE.CONCAT, ops.OPTYPE.SPLIT, ops.OPTYPE.RESHAPE):
        return None
    if node.type in (ops.OPTYPE.SLICE, ops.OPTYPE.OUTPUT, ops.OPTYPE.UNBIND, ops.OPTYPE.EXPAND):
        return None
    try:
        if graph.is_out_channel_pruning_fn(handler):
            return graph.get_out_channels(node)
        return graph.get_in_channels(node)
    except (AttributeError, IndexError, TypeError):
        return None


def closure(graph: Any, root: Any, idxs: list[int], bound: int) -> Closure:
    """Every layer channel coupled to ``idxs`` of ``root`` (a node pruned by its out-channel function).

    What a channel reaches depends only on the channel (mappings map indices), so a second root
    channel arriving at a reached layer channel is tied to the first and need not go further.
    """
    from torch_pruning._helpers import _HybridIndex

    result = Closure(parent={i: i for i in idxs})
    fn = graph.get_pruner_of_module(root.module).prune_out_channels
    result.reached[(root, fn)] = {i: i for i in idxs}
    work = [(root, fn, [_HybridIndex(i, i) for i in idxs])]
    limits: dict[tuple[Any, Callable], int | None] = {}
    while work:
        node, fn, pairs = work.pop()
        for dep in node.dependencies:
            if not dep.is_triggered_by(fn):
                continue
            new = pairs
            for mapping in dep.index_mapping:
                if mapping is not None and new:
                    new = mapping(new)
            if not new:
                continue
            key = (dep.target, dep.handler)
            if key not in limits:
                limits[key] = channels_of(graph, dep.target, dep.handler)
            limit = limits[key] or bound
            seen = result.reached.setdefault(key, {})
            fresh = []
            for h in new:
                idx, r = int(h.idx), int(h.root_idx)
                if not 0 <= idx < limit:
                    if limits[key] is not None:
                        result.out_of_range.append((dep.target, idx, limit))
                elif idx in seen:
                    result.tie(seen[idx], r)
                else:
                    seen[idx] = r
                    fresh.append(h)
            if fresh:
                work.append((dep.target, dep.handler, fresh))
    return result


def tied_classes(c: Closure, roots: list[int]) -> dict[int, int]:
    """Root channel -> the smallest root channel it is tied to."""
    return {r: c.find(r) for r in roots}
