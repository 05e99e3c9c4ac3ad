"""Building a latency table: candidates built, measured interleaved with a reference, stored row by row."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtprune.backends import BackendConfig, get_backend
from trtprune.errors import UsageError
from trtprune.lut.grid import grid_widths, refine_candidates
from trtprune.lut.store import BASE, LutMeta, LutStore, Pair, Row
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


def load_for_lut(config: LutConfig) -> LoadedModel:
    from trtprune.loading import load_model
    from trtprune.shapes import parse_shape

    loaded = load_model(config.model, config.input_shape, config.checkpoint, pretrained=False)
    if config.batch:
        loaded.input_shape = parse_shape((config.batch, *loaded.input_shape[1:]))
    return loaded


def table_meta(loaded: LoadedModel, groups: ModelGroups, config: LutConfig) -> LutMeta:
    backend = get_backend(config.backend)
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
        config={k: v for k, v in config.to_json().items() if k not in ("model", "checkpoint")},
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
        self.noisy: list[str] = []
        self._block_trace = None

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

        from trtprune.lut.block import extract_block, trace

        if self._block_trace is None:
            self._block_trace = trace(self.loaded.model, torch.randn(*self.loaded.input_shape))
        return extract_block(*self._block_trace, group)

    # measuring --------------------------------------------------------------
    def base(self) -> float:
        if self.store.done(BASE):
            return self.store.base_ms()
        runner = self._prepare(self.loaded.model)
        t = measure_interleaved({"base": runner.timed}, self.config.timing)["base"]
        self.store.add([Row(BASE, 0, t.median_ms, t.p90_ms, t.spread, t.noisy, t.median_ms)])
        return t.median_ms

    def group(self, index: int, group: ChannelGroup, base_ms: float) -> None:
        widths = [
            w
            for w in grid_widths(group.channels, self.config.step, self.config.small, group.partitions)
            if w < group.channels
        ]
        block = self._block(group) if self.config.mode == "block" else None
        reference = self._prepare(block.module, block.inputs) if block is not None else self._base_runner
        ref_noise = 0.0
        for _ in range(1 + (self.config.refine_rounds if self.config.refine else 0)):
            todo = [w for w in widths if w not in self.store.done(group.name)]
            self.skipped += len(widths) - len(todo)
            for chunk in _chunks(todo, self.config.candidates_per_batch):
                runners = {w: self._candidate(group, w, block) for w in chunk}
                timings = measure_interleaved(
                    {"ref": reference.timed, **{str(w): r.timed for w, r in runners.items()}}, self.config.timing
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
            reference.close()

    def pair(self, a: ChannelGroup, b: ChannelGroup) -> None:
        from trtprune.surgery import prune_copy

        wa, wb = self._half(a), self._half(b)
        widths = {"a": {a.name: wa}, "b": {b.name: wb}, "ab": {a.name: wa, b.name: wb}}
        if self.config.mode == "block":
            block = self._block(merge_groups(a, b))
            source, inputs = block.module, block.inputs
            reference = self._prepare(source, inputs)
        else:
            source, inputs, reference = self.loaded.model, None, self._base_runner
        runners = {k: self._prepare(prune_copy(source, self.groups, w), inputs) for k, w in widths.items()}
        t = measure_interleaved(
            {"ref": reference.timed, **{k: r.timed for k, r in runners.items()}}, self.config.timing
        )
        self.store.add_pair(
            Pair(a.name, b.name, wa, wb, t["ab"].median_ms, t["a"].median_ms, t["b"].median_ms, t["ref"].median_ms)
        )
        self.measured += 1
        for r in runners.values():
            r.close()
        if reference is not self._base_runner:
            reference.close()

    def _half(self, group: ChannelGroup) -> int:
        """The grid width nearest half the group (where the pair's interaction is measured)."""
        grid = [
            w
            for w in grid_widths(group.channels, self.config.step, self.config.small, group.partitions)
            if w < group.channels
        ]
        if not grid:  # a group narrower than the step: cut it in half
            return max(group.partitions, group.channels // 2 // group.partitions * group.partitions)
        return min(grid, key=lambda w: abs(w - group.channels / 2))

    def run(self) -> float:
        base_ms = self.base()
        self._base_runner = self._prepare(self.loaded.model) if self.config.mode == "network" else None
        for i, group in enumerate(self.groups.groups):
            self.group(i, group, base_ms)
        done = {(p.a, p.b) for p in self.store.pairs()}
        edges = joined_pairs(self.groups) if self.config.pairs else []
        for i, (a, b) in enumerate(edges):
            if (a, b) in done:
                self.skipped += 1
                continue
            self.pair(self.groups.by_name[a], self.groups.by_name[b])
            self.progress({"group": f"{a} x {b}", "index": i, "groups": len(edges), "measured": self.measured})
        return base_ms


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
    )
