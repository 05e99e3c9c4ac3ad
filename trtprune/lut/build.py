"""Building a latency table: candidates built, measured interleaved with a reference, stored row by row."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtprune.backends import BackendConfig, get_backend
from trtprune.errors import UsageError
from trtprune.lut.grid import grid_widths, refine_candidates
from trtprune.lut.store import BASE, PROBE, LutMeta, LutStore, Pair, Row
from trtprune.timing import TimingConfig, measure_interleaved

if TYPE_CHECKING:
    from trtprune.backends.base import Runner
    from trtprune.groups import ChannelGroup, ModelGroups
    from trtprune.loading import LoadedModel

log = logging.getLogger(__name__)
MODES = ("network", "block")
Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class LutConfig:
    """What to measure and how."""

    model: str | None
    input_shape: str | tuple[int, ...] | None = None
    checkpoint: str | None = None
    backend: str = "ort"
    backend_config: BackendConfig = BackendConfig()
    batch: int | None = None
    mode: str = "network"
    step: int = 8
    small: int = 16  # groups of at most this many channels are measured at every width
    refine: bool = True
    refine_rounds: int = 2
    # joined pairs of groups cut together (interaction terms), opt-in: on the four tables of
    # benchmarks/results/lut_fidelity-*.md they cut ResNet-18 block mode's p90 error from 30% to 13%
    # but raised it on the other three (network mode, and ResNet-20 block mode: 21% -> 93%)
    pairs: bool = False
    jump_ratio: float = 0.01  # a jump is a latency change above this share of the base (or 3x the noise)
    candidates_per_batch: int = 6
    timing: TimingConfig = TimingConfig()
    # block mode: a group's sub-graph is measured once per distinct structure (a ResNet stage's
    # identical blocks share one curve; the copies name their source in ``copied_from``)
    dedupe: bool = True
    # block mode's cheaper timing: blocks are small, so shorter samples (the floor below, never
    # above ``timing``'s), a short warm-up between back-to-back batches (the machine is already
    # in its sustained state) and a whole grid per batch amortize the fixed costs
    block_min_sample_ms: float = 2.0
    block_warmup_ms: float = 50.0
    block_warmup: int = 3  # untimed runs per new engine before its calibration
    # a block candidate whose jitter (IQR) stays below this share of the base network's latency is
    # calm enough: it is not re-measured, and once every candidate of a batch is, the batch stops
    # after ``block_min_rounds`` rounds (5% of a block that is 2% of the network moves no prediction)
    block_noise_share: float = 0.01
    block_min_rounds: int = 8
    block_candidates_per_batch: int = 16

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown table mode {self.mode!r}; use network or block")
        if self.step < 1:
            raise UsageError(f"--step must be >= 1, not {self.step}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(d["input_shape"]) if isinstance(d["input_shape"], tuple) else d["input_shape"]
        return d


@dataclass
class LutResult:
    path: Path
    measured: int
    skipped: int
    engines_built: int
    wall_s: float
    base_ms: float
    noisy: list[str] = field(default_factory=list)
    copied: int = 0  # rows stored from an identical block instead of measured (block mode's dedupe)


def load_for_lut(config: LutConfig) -> LoadedModel:
    from trtprune.loading import load_model
    from trtprune.shapes import parse_shape

    loaded = load_model(config.model, config.input_shape, config.checkpoint, pretrained=False)
    if config.batch:
        loaded.input_shape = parse_shape((config.batch, *loaded.input_shape[1:]))
    return loaded


def table_meta(loaded: LoadedModel, groups: ModelGroups, config: LutConfig) -> LutMeta:
    from trtprune.lut.layers import layer_joins

    backend = get_backend(config.backend)
    settings = {k: v for k, v in config.to_json().items() if k not in ("model", "checkpoint")}
    settings["layers"] = layer_joins(loaded.model, tuple(loaded.input_shape), groups)
    if config.mode == "block":
        settings["probe_widths"] = {g.name: half_width(g, config.step, config.small) for g in groups.groups}
    return LutMeta(
        model=loaded.name,
        input_shape=list(loaded.input_shape),
        backend=config.backend,
        precision=config.backend_config.precision,
        mode=config.mode,
        environment=backend.environment(config.backend_config),
        widths={g.name: g.channels for g in groups.groups},
        channels={g.name: g.channels for g in groups.groups},
        checkpoint=str(config.checkpoint) if config.checkpoint else None,
        step=config.step,
        config=settings,
    )


class _Builder:
    def __init__(
        self, config: LutConfig, loaded: LoadedModel, groups: ModelGroups, store: LutStore, progress: Progress | None
    ):
        self.config, self.loaded, self.groups, self.store = config, loaded, groups, store
        self.progress = progress or (lambda event: None)
        self.engines = 0
        self.measured = 0
        self.skipped = 0
        self.copied = 0
        self.noisy: list[str] = []
        self._block_trace = None
        self._blocks: dict[str, Any] = {}
        self._signatures: dict[str, str] = {}  # group -> its block's signature (block mode)
        self._measured_by: dict[str, str] = {}  # signature -> the group whose block is measured for it
        self._refs: dict[str, Runner] = {}  # signature -> the unpruned block, prepared once
        self._base_runner: Runner | None = None
        self.timing = config.timing
        if config.mode == "block":
            self.timing = replace(
                config.timing,
                min_sample_ms=min(config.timing.min_sample_ms, config.block_min_sample_ms),
                warmup_ms=min(config.timing.warmup_ms, config.block_warmup_ms),
                warmup=min(config.timing.warmup, config.block_warmup),
                min_rounds=config.block_min_rounds or config.timing.min_rounds,
            )

    # candidates -------------------------------------------------------------
    def _prepare(self, model, example_inputs=None) -> Runner:
        from trtprune.candidates import prepare

        self.engines += 1
        return prepare(
            model,
            tuple(self.loaded.input_shape),
            self.config.backend,
            self.config.backend_config,
            example_inputs=example_inputs,
        )

    def _candidate(self, group: ChannelGroup, width: int, block=None) -> Runner:
        from trtprune.surgery import prune_copy

        if block is None:
            return self._prepare(prune_copy(self.loaded.model, self.groups, {group.name: width}))
        return self._prepare(prune_copy(block.module, self.groups, {group.name: width}), block.inputs)

    def _block(self, group: ChannelGroup):
        import torch

        from trtprune.lut.block import extract_block, signature, trace

        if group.name not in self._blocks:
            if self._block_trace is None:
                self._block_trace = trace(self.loaded.model, torch.randn(*self.loaded.input_shape))
            block = extract_block(*self._block_trace, group)
            self._blocks[group.name] = block
            self._signatures[group.name] = signature(block) if self.config.dedupe else group.name
        return self._blocks[group.name]

    def _reference(self, group: ChannelGroup) -> Runner:
        """What a group's candidates are timed beside: the unpruned block (one per signature) or network."""
        if self.config.mode == "network":
            if self._base_runner is None:
                self._base_runner = self._prepare(self.loaded.model)
            return self._base_runner
        block = self._block(group)
        sig = self._signatures[group.name]
        if sig not in self._refs:
            self._refs[sig] = self._prepare(block.module, block.inputs)
        return self._refs[sig]

    def _release(self, group: ChannelGroup) -> None:
        """Close the group's block reference (once its rows are stored)."""
        sig = self._signatures.get(group.name)
        if sig in self._refs:
            self._refs.pop(sig).close()

    # measuring --------------------------------------------------------------
    def base(self) -> float:
        if self.store.done(BASE):
            base_ms = self.store.base_ms()
            if self.config.mode == "block" and not {PROBE, *(g.name for g in self.groups.groups)} <= set(
                self.store.block_refs()
            ):
                self._block_refs(None)  # killed between the base and its block references
            return base_ms
        if self.config.mode == "block":
            return self._block_refs(self._prepare(self.loaded.model))
        runner = self._prepare(self.loaded.model)
        t = measure_interleaved({"base": runner.timed}, self.config.timing)["base"]
        self.store.add([Row(BASE, 0, t.median_ms, t.p90_ms, t.spread, t.noisy, t.median_ms)])
        runner.close()
        return t.median_ms

    def _block_refs(self, base: Runner | None) -> float:
        """The whole network and every distinct unpruned block, timed in one interleaved batch.

        Block deltas are measured minutes later, when a shared machine may run faster or
        slower; each block's share of the network measured here puts them in the base's
        milliseconds (:class:`~trtprune.lut.predict.LatencyModel`).
        """
        from trtprune.surgery import prune_copy

        net = base or self._prepare(self.loaded.model)
        net.timed(self.config.timing.warmup)
        rough_ms = net.timed(3) / 3  # sets the noise floor of this batch (the base is not known yet)
        for g in self.groups.groups:
            self._block(g)
        reps: dict[str, ChannelGroup] = {}
        for g in self.groups.groups:
            reps.setdefault(self._signatures[g.name], g)
        probe_widths = {g.name: half_width(g, self.config.step, self.config.small) for g in self.groups.groups}
        probe = self._prepare(prune_copy(self.loaded.model, self.groups, probe_widths))
        candidates = {
            "base": net.timed,
            PROBE: probe.timed,
            **{f"ref:{sig}": self._reference(g).timed for sig, g in reps.items()},
        }
        timing = replace(
            self.timing,
            warmup_ms=self.config.timing.warmup_ms,
            min_rounds=self.config.timing.min_rounds,  # every round: the base anchors the whole table
            noise_floor_ms=self.config.block_noise_share * rough_ms,
        )
        t = measure_interleaved(candidates, timing)
        net_ms = t["base"].median_ms
        if base is not None:
            b = t["base"]
            self.store.add([Row(BASE, 0, b.median_ms, b.p90_ms, b.spread, b.noisy, b.median_ms)])
        refs = {g.name: (t[f"ref:{self._signatures[g.name]}"].median_ms, net_ms) for g in self.groups.groups}
        self.store.add_block_refs({**refs, PROBE: (t[PROBE].median_ms, net_ms)})
        net.close()
        probe.close()
        return net_ms

    def group(self, index: int, group: ChannelGroup, base_ms: float) -> None:
        block = self._block(group) if self.config.mode == "block" else None
        if block is not None:
            source = self._measured_by.setdefault(self._signatures[group.name], group.name)
            if source != group.name:
                self._copy(index, group, source)
                return
        widths = [
            w
            for w in grid_widths(group.channels, self.config.step, self.config.small, group.partitions)
            if w < group.channels
        ]
        ref_noise = 0.0
        for _ in range(1 + (self.config.refine_rounds if self.config.refine else 0)):
            todo = [w for w in widths if w not in self.store.done(group.name)]
            self.skipped += len(widths) - len(todo)
            per_batch = self.config.candidates_per_batch if block is None else self.config.block_candidates_per_batch
            for chunk in _chunks(todo, per_batch):
                reference = self._reference(group)
                runners = {w: self._candidate(group, w, block) for w in chunk}
                timings = measure_interleaved(
                    {"ref": reference.timed, **{str(w): r.timed for w, r in runners.items()}}, self.timing
                )
                ref = timings["ref"]
                ref_noise = max(ref_noise, ref.spread * ref.median_ms)
                rows = [
                    Row(
                        group.name,
                        w,
                        timings[str(w)].median_ms,
                        timings[str(w)].p90_ms,
                        timings[str(w)].spread,
                        timings[str(w)].noisy,
                        ref.median_ms,
                    )
                    for w in chunk
                ]
                self.store.add(rows)
                self.measured += len(rows)
                self.noisy += [f"{group.name}@{r.width}" for r in rows if r.noisy]
                for r in runners.values():
                    r.close()
                self.progress(
                    {"group": group.name, "index": index, "groups": len(self.groups.groups), "measured": self.measured}
                )
            deltas = {r.width: r.delta_ms for r in self.store.rows(group.name)}
            deltas[group.channels] = 0.0
            threshold = max(self.config.jump_ratio * base_ms, 3 * ref_noise)
            widths = [w for w in refine_candidates(deltas, threshold, group.partitions) if w not in deltas]
            if not widths:
                break
        if block is not None:
            self._release(group)  # later identical blocks copy these rows instead of timing it again

    def _copy(self, index: int, group: ChannelGroup, source: str) -> None:
        """Store the rows of ``source`` (an identical block, measured earlier) for ``group``."""
        have = self.store.done(group.name)
        rows = [replace(r, group=group.name, copied_from=source) for r in self.store.rows(source)]
        todo = [r for r in rows if r.width not in have]
        self.skipped += len(rows) - len(todo)
        if todo:
            self.store.add(todo)
            self.copied += len(todo)
            log.info("%s: %d rows copied from the identical block of %s", group.name, len(todo), source)
        self.progress(
            {"group": group.name, "index": index, "groups": len(self.groups.groups), "measured": self.measured}
        )

    def pair(self, a: ChannelGroup, b: ChannelGroup) -> None:
        from trtprune.lut.block import signature
        from trtprune.surgery import prune_copy

        wa, wb = self._half(a), self._half(b)
        widths = {"a": {a.name: wa}, "b": {b.name: wb}, "ab": {a.name: wa, b.name: wb}}
        if self.config.mode == "block":
            block = extract_pair_block(self, a, b)
            if self.config.dedupe:
                sig = signature(block, [a, b])
                source = self._pair_sources.setdefault(sig, (a.name, b.name))
                if source != (a.name, b.name):
                    measured = next(p for p in self.store.pairs() if (p.a, p.b) == source)
                    self.store.add_pair(replace(measured, a=a.name, b=b.name, copied_from=source))
                    self.copied += 1
                    return
            source, inputs = block.module, block.inputs
            reference = self._prepare(source, inputs)
        else:
            source, inputs, reference = self.loaded.model, None, self._reference(a)
        runners = {k: self._prepare(prune_copy(source, self.groups, w), inputs) for k, w in widths.items()}
        t = measure_interleaved({"ref": reference.timed, **{k: r.timed for k, r in runners.items()}}, self.timing)
        self.store.add_pair(
            Pair(a.name, b.name, wa, wb, t["ab"].median_ms, t["a"].median_ms, t["b"].median_ms, t["ref"].median_ms)
        )
        self.measured += 1
        for r in runners.values():
            r.close()
        if reference is not self._base_runner:
            reference.close()

    def _half(self, group: ChannelGroup) -> int:
        return half_width(group, self.config.step, self.config.small)

    def run(self) -> float:
        base_ms = self.base()
        if self.config.mode == "block":
            self.timing = replace(self.timing, noise_floor_ms=self.config.block_noise_share * base_ms)
        for i, group in enumerate(self.groups.groups):
            self.group(i, group, base_ms)
        for sig in list(self._refs):
            self._refs.pop(sig).close()
        self._pair_sources: dict[str, tuple[str, str]] = {}
        done = {(p.a, p.b) for p in self.store.pairs()}
        edges = joined_pairs(self.groups) if self.config.pairs else []
        for i, (a, b) in enumerate(edges):
            if (a, b) in done:
                self.skipped += 1
                if self.config.mode == "block" and self.config.dedupe:  # later identical pairs copy this one
                    from trtprune.lut.block import signature

                    block = extract_pair_block(self, self.groups.by_name[a], self.groups.by_name[b])
                    sig = signature(block, [self.groups.by_name[a], self.groups.by_name[b]])
                    self._pair_sources.setdefault(sig, (a, b))
                continue
            self.pair(self.groups.by_name[a], self.groups.by_name[b])
            self.progress({"group": f"{a} x {b}", "index": i, "groups": len(edges), "measured": self.measured})
        if self._base_runner is not None:
            self._base_runner.close()
        return base_ms


def extract_pair_block(builder: _Builder, a: ChannelGroup, b: ChannelGroup):
    """The joint sub-graph of two joined groups (cut from the builder's traced network)."""
    from trtprune.lut.block import extract_block

    builder._block(a)  # traces the network once
    return extract_block(*builder._block_trace, merge_groups(a, b))


def half_width(group: ChannelGroup, step: int, small: int) -> int:
    """The grid width nearest half the group (where a pair's interaction, or the probe, is measured)."""
    grid = [w for w in grid_widths(group.channels, step, small, group.partitions) if w < group.channels]
    if not grid:  # a group narrower than the step: cut it in half
        return max(group.partitions, group.channels // 2 // group.partitions * group.partitions)
    return min(grid, key=lambda w: abs(w - group.channels / 2))


def joined_pairs(groups: ModelGroups) -> list[tuple[str, str]]:
    """Unordered pairs of groups joined by a layer that consumes one and produces the other.

    One measurement per pair covers every layer between them (a basic block's conv1 and
    conv2 join the same two groups in both directions).
    """
    consumes: dict[str, list[str]] = {}
    produces: dict[str, list[str]] = {}
    for g in groups.groups:
        for layer in g.consumers:
            consumes.setdefault(layer, []).append(g.name)
        for layer in g.producers:
            produces.setdefault(layer, []).append(g.name)
    edges = {
        tuple(sorted((a, b))) for layer, ins in consumes.items() for a in ins for b in produces.get(layer, []) if a != b
    }
    return sorted(edges)


def merge_groups(a: ChannelGroup, b: ChannelGroup) -> ChannelGroup:
    """A pseudo-group spanning both groups' layers (to cut the pair's joint sub-graph)."""
    from dataclasses import replace

    return replace(
        a, producers=a.producers + b.producers, consumers=a.consumers + b.consumers, layers=a.layers + b.layers
    )


def _chunks(items: list[int], n: int) -> Iterator[list[int]]:
    for i in range(0, len(items), max(1, n)):
        yield items[i : i + n]


def build_lut(
    config: LutConfig, out: str | os.PathLike[str], progress: Progress | None = None, force: bool = False
) -> LutResult:
    """Measure (or finish measuring) the table for ``config`` into ``out``."""
    from trtprune.groups import find_groups

    start = time.perf_counter()
    backend = get_backend(config.backend)
    backend.check_available(config.backend_config)
    loaded = load_for_lut(config)
    groups = find_groups(loaded.model, loaded.input_shape)
    with LutStore(out, create=True) as store:
        store.init_meta(table_meta(loaded, groups, config), force=force)
        builder = _Builder(config, loaded, groups, store, progress)
        base_ms = builder.run()
    return LutResult(
        Path(out),
        builder.measured,
        builder.skipped,
        builder.engines,
        time.perf_counter() - start,
        base_ms,
        builder.noisy,
        builder.copied,
    )
