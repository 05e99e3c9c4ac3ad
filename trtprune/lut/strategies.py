"""What a table row times, by mode: the whole network (``network``) or the group's sub-graph (``block``).

A strategy answers the questions on which the two modes differ; everything else (the base
and its probes, the grid and its refinement, batched paired timing, copies, pairs) is shared
by :class:`~trtprune.lut.build.TableBuilder`:

- ``candidate(group, width)``: the engine timed for one row;
- ``reference(group)`` / ``ref_key(group)``: what that row is timed beside (the unpruned
  network, or the group's unpruned block; one engine per key);
- ``source(group)``: the group whose rows a group takes (itself, or in block mode an earlier
  group with an identical block, whose rows it copies);
- ``base_references()`` / ``block_refs(...)``: what is timed beside the base network when the
  table starts (block mode: each distinct unpruned block, to put block rows in the base's frame);
- ``pair_parts(a, b)``: the module, inputs and reference a joined pair is timed with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from trtprune.lut.block import extract_block, signature, trace
from trtprune.surgery.apply import prune_copy

if TYPE_CHECKING:
    from trtprune.backends.base import Runner
    from trtprune.engine.timing import Timing, TimingConfig
    from trtprune.graph.groups import ChannelGroup, ModelGroups
    from trtprune.lut.config import LutConfig
    from trtprune.models.loading import LoadedModel

Prepare = Callable[..., "Runner"]  # (module, example_inputs=None) -> a prepared engine, counted by the builder


@dataclass(frozen=True)
class PairParts:
    """How a joined pair is timed: its module and inputs, the reference beside it (``owned``: a
    fresh engine the builder closes after), or the pair an identical joint block already measured."""

    module: Any
    inputs: Any
    reference: Runner | None
    owned: bool = False
    copy_of: tuple[str, str] | None = None


class NetworkStrategy:
    """Rows are whole networks with one group cut, each timed beside the unpruned network."""

    def __init__(self, config: LutConfig, loaded: LoadedModel, groups: ModelGroups, prepare: Prepare) -> None:
        self.config, self.loaded, self.groups, self.prepare = config, loaded, groups, prepare
        self.timing: TimingConfig = config.timing
        self.per_batch = config.candidates_per_batch
        self._base: Runner | None = None
        self._owned = False  # whether the strategy prepared ``_base`` (else the builder did, and closes it)

    def candidate(self, group: ChannelGroup, width: int) -> Runner:

        return self.prepare(prune_copy(self.loaded.model, self.groups, {group.name: width}))

    def reference(self, group: ChannelGroup) -> Runner:
        if self._base is None:
            self._base, self._owned = self.prepare(self.loaded.model), True
        return self._base

    def ref_key(self, group: ChannelGroup) -> str:
        return "network"

    def source(self, group: ChannelGroup) -> str:
        return group.name

    def base_references(self) -> dict[str, Runner]:
        return {}

    def block_refs(self, timings: dict[str, Timing], base_ms: float) -> dict[str, tuple[float, float]]:
        return {}

    def adopt_base(self, runner: Runner) -> None:
        """The base network timed in the table's frames (the builder's to close): the reference of
        every later batch."""
        if self._base is not None and self._owned:
            self._base.close()
        self._base, self._owned = runner, False

    def pair_parts(self, a: ChannelGroup, b: ChannelGroup) -> PairParts:
        return PairParts(self.loaded.model, None, self.reference(a))

    def pair_done(self, a: ChannelGroup, b: ChannelGroup) -> None:
        pass

    def close_references(self) -> None:
        pass

    def close(self) -> None:
        if self._base is not None and self._owned:
            self._base.close()
        self._base = None


class BlockStrategy:
    """Rows are the sub-graph a group touches (producers, consumers, norms, activations, adds) at
    their real input shapes, timed beside the unpruned block; identical blocks are timed once."""

    def __init__(self, config: LutConfig, loaded: LoadedModel, groups: ModelGroups, prepare: Prepare) -> None:
        self.config, self.loaded, self.groups, self.prepare = config, loaded, groups, prepare
        # blocks are small: shorter samples (never above ``timing``'s), a short warm-up between
        # back-to-back batches, bigger batches (candidates of several groups beside their blocks)
        self.timing: TimingConfig = replace(
            config.timing,
            min_sample_ms=min(config.timing.min_sample_ms, config.block_min_sample_ms),
            warmup_ms=min(config.timing.warmup_ms, config.block_warmup_ms),
            warmup=min(config.timing.warmup, config.block_warmup),
        )
        self.per_batch = config.block_candidates_per_batch
        self._trace = None
        self._blocks: dict[str, Any] = {}
        self._signatures: dict[str, str] = {}  # group -> its block's signature
        self._measured_by: dict[str, str] = {}  # signature -> the group whose block is measured for it
        self._refs: dict[str, Runner] = {}  # signature -> the unpruned block, prepared once
        self._pair_sources: dict[str, tuple[str, str]] = {}  # joint-block signature -> the pair measured for it

    def block(self, group: ChannelGroup):
        """The group's sub-graph, cut from the network traced once."""

        if group.name not in self._blocks:
            block = extract_block(*self._traced(), group)
            self._blocks[group.name] = block
            self._signatures[group.name] = signature(block) if self.config.dedupe else group.name
        return self._blocks[group.name]

    def _traced(self):
        import torch

        if self._trace is None:
            self._trace = trace(self.loaded.model, torch.randn(*self.loaded.input_shape))
        return self._trace

    def candidate(self, group: ChannelGroup, width: int) -> Runner:

        block = self.block(group)
        return self.prepare(prune_copy(block.module, self.groups, {group.name: width}), block.inputs)

    def reference(self, group: ChannelGroup) -> Runner:
        block = self.block(group)
        key = self._signatures[group.name]
        if key not in self._refs:
            self._refs[key] = self.prepare(block.module, block.inputs)
        return self._refs[key]

    def ref_key(self, group: ChannelGroup) -> str:
        self.block(group)
        return self._signatures[group.name]

    def source(self, group: ChannelGroup) -> str:
        return self._measured_by.setdefault(self.ref_key(group), group.name)

    def base_references(self) -> dict[str, Runner]:
        return {f"block:{self.ref_key(g)}": self.reference(g) for g in self.groups.groups}

    def block_refs(self, timings: dict[str, Timing], base_ms: float) -> dict[str, tuple[float, float]]:
        """Each group's unpruned block as timed beside the base: ``{group: (block_ms, net_ms)}``."""
        return {g.name: (timings[f"block:{self.ref_key(g)}"].ratio * base_ms, base_ms) for g in self.groups.groups}

    def adopt_base(self, runner: Runner) -> None:
        pass  # block rows are timed beside their blocks

    def pair_parts(self, a: ChannelGroup, b: ChannelGroup) -> PairParts:
        """The pair's joint block and its reference, or the pair already measured for an identical block."""
        block, key = self._pair_block(a, b)
        source = self._pair_sources.setdefault(key, (a.name, b.name))
        if source != (a.name, b.name):
            return PairParts(block.module, block.inputs, None, copy_of=source)
        return PairParts(block.module, block.inputs, self.prepare(block.module, block.inputs), owned=True)

    def pair_done(self, a: ChannelGroup, b: ChannelGroup) -> None:
        """A pair found in the table: later identical pairs copy it."""
        self._pair_sources.setdefault(self._pair_block(a, b)[1], (a.name, b.name))

    def _pair_block(self, a: ChannelGroup, b: ChannelGroup):

        block = extract_block(*self._traced(), merge_groups(a, b))
        return block, signature(block, [a, b]) if self.config.dedupe else f"{a.name}|{b.name}"

    def close_references(self) -> None:
        for key in list(self._refs):
            self._refs.pop(key).close()

    def close(self) -> None:
        self.close_references()


STRATEGIES: dict[str, type[NetworkStrategy] | type[BlockStrategy]] = {
    "network": NetworkStrategy,
    "block": BlockStrategy,
}


def merge_groups(a: ChannelGroup, b: ChannelGroup) -> ChannelGroup:
    """A pseudo-group spanning both groups' layers (to cut the pair's joint sub-graph)."""
    return replace(
        a, producers=a.producers + b.producers, consumers=a.consumers + b.consumers, layers=a.layers + b.layers
    )
