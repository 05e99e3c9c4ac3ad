"""Building a latency table: candidates built, measured interleaved with a reference, stored row by row."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.backends import get_backend
from trtprune.core.progress import TableRows
from trtprune.core.shapes import parse_shape
from trtprune.engine.candidates import prepare
from trtprune.engine.timing import measure_interleaved
from trtprune.graph.groups import find_groups
from trtprune.lut.config import LutConfig
from trtprune.lut.frames import Frame, FrameShift, Remeasure, frame_shift, opening, shift
from trtprune.lut.grid import allowed_widths, grid_widths, refine_candidates, widths_around
from trtprune.lut.layers import group_resolutions, layer_joins
from trtprune.lut.settings import TableSettings, read_settings
from trtprune.lut.store import BASE, LutMeta, LutStore, Pair, Probe, Row
from trtprune.lut.strategies import STRATEGIES, BlockStrategy, NetworkStrategy, PairParts
from trtprune.models.loading import load_model
from trtprune.surgery.apply import prune_copy

if TYPE_CHECKING:
    from trtprune.backends.base import Runner
    from trtprune.engine.timing import Timing, TimingConfig
    from trtprune.graph.groups import ChannelGroup, ModelGroups
    from trtprune.models.loading import LoadedModel

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]


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
    frame_shift: FrameShift | None = None  # how far the closing frame moved from the opening one
    discarded: list[FrameShift] = field(default_factory=list)  # measurements measured again: how far each moved


def load_for_lut(config: LutConfig) -> LoadedModel:

    loaded = load_model(config.model, config.input_shape, config.checkpoint, pretrained=False)
    if config.batch:
        loaded.input_shape = parse_shape((config.batch, *loaded.input_shape[1:]))
    return loaded


def table_meta(loaded: LoadedModel, groups: ModelGroups, config: LutConfig) -> LutMeta:

    backend = get_backend(config.backend)
    shape = tuple(loaded.input_shape)
    resolutions = group_resolutions(loaded.model, shape, groups)
    settings = TableSettings(
        config,
        tuple(layer_joins(loaded.model, shape, groups)),
        probe_widths(groups, config, resolutions),
        resolutions,
    )
    return LutMeta(
        model=loaded.name,
        input_shape=list(loaded.input_shape),
        backend=config.backend,
        precision=config.backend_config.precision,
        mode=config.mode,
        environment=backend.environment(config.backend_config),
        widths={g.name: g.channels for g in groups.groups},
        checkpoint=str(config.checkpoint) if config.checkpoint else None,
        step=config.step,
        config=settings.to_json(),
    )


@dataclass
class FrameTimer:
    """The engines of a table's frames: the network and its probes, prepared once (kept open from the
    opening frame to the closing one) and timed with the strategy's base references in one interleaved
    batch, each paired with the network."""

    config: LutConfig
    loaded: LoadedModel
    groups: ModelGroups
    strategy: NetworkStrategy | BlockStrategy
    prepare: Callable[..., Runner]
    probes: dict[str, dict[str, int]]
    runners: dict[str, Runner] = field(default_factory=dict)

    def time(self) -> dict[str, Timing]:
        if not self.runners:
            model = self.loaded.model
            self.runners[BASE] = self.prepare(model)
            self.runners.update({n: self.prepare(prune_copy(model, self.groups, w)) for n, w in self.probes.items()})
            self.strategy.adopt_base(self.runners[BASE])
        net = self.runners[BASE]
        net.timed(self.config.timing.warmup)
        rough_ms = net.timed(3) / 3  # the rows' error target from a rough base
        timing = replace(self.config.timing, target_se_ms=self.config.row_error * rough_ms)
        runners = {**self.runners, **self.strategy.base_references()}
        return measure_interleaved({n: r.timed for n, r in runners.items()}, timing, reference=BASE)

    def frame(self) -> Frame:
        """A frame timed now: the network's ms, the probes' and the blocks' shares of it."""
        t = self.time()
        base_ms = t[BASE].median_ms
        blocks = {g: b / n for g, (b, n) in self.strategy.block_refs(t, base_ms).items()}
        return Frame(base_ms, {n: t[n].ratio for n in self.runners if n != BASE}, blocks)

    def close(self) -> None:
        for runner in self.runners.values():
            runner.close()
        self.runners = {}


class TableBuilder:
    """Measures a table into an open store: the base network and its probes, then every group's
    grid (refined where its staircase jumps) in batches timed beside their references, then the
    copies of identical blocks and the joined pairs. What a row times is the mode's strategy
    (:mod:`trtprune.lut.strategies`)."""

    def __init__(
        self,
        config: LutConfig,
        loaded: LoadedModel,
        groups: ModelGroups,
        store: LutStore,
        progress: Progress | None,
        remeasure: Remeasure = Remeasure(),
    ):

        self.config, self.loaded, self.groups, self.store = config, loaded, groups, store
        self.remeasure = remeasure
        self.opened = False  # whether this invocation timed the opening frame (not a resumed build's)
        self.progress = progress or (lambda event: None)
        self.engines = 0
        self.measured = 0
        self.skipped = 0
        self.copied = 0
        self.noisy: list[str] = []
        self.strategy = STRATEGIES[config.mode](config, loaded, groups, self._prepare)
        probes = read_settings(store.require_meta(), f"table {store.path}").probe_widths
        self.frames = FrameTimer(config, loaded, groups, self.strategy, self._prepare, probes)
        self.timing = self.strategy.timing

    def _prepare(self, model, example_inputs=None) -> Runner:
        """A candidate prepared as ``sessions`` engines (on TensorRT, a build each: what the table costs)."""
        self.engines += self.config.backend_config.sessions
        return prepare(
            model,
            tuple(self.loaded.input_shape),
            self.config.backend,
            self.config.backend_config,
            example_inputs=example_inputs,
        )

    def run(self) -> float:
        try:
            again = True
            while again:  # a build whose frame moved is measured again (Remeasure)
                base_ms = self.base()
                self.timing = replace(self.timing, target_se_ms=self.config.row_error * base_ms)
                self.measure_groups(base_ms)
                again = self.config.closing and self.store.closing() is None and not self.close_frame()
            self.strategy.close_references()
            if self.config.pairs:
                self.measure_pairs()
        finally:
            self.strategy.close()
            self.frames.close()
        return base_ms

    def base(self) -> float:
        """The opening frame (:class:`FrameTimer`): each block's share of the network measured here
        puts its rows' changes in the base's milliseconds (:class:`~trtprune.lut.predict.LatencyModel`).
        A table whose base row predates its probes gets the probes (beside a fresh base) and keeps
        its base row."""

        probes = self.frames.probes
        have_base = bool(self.store.done(BASE))
        need_blocks = self.config.mode == "block"
        have_blocks = not need_blocks or {g.name for g in self.groups.groups} <= set(self.store.block_refs())
        if have_base and have_blocks and set(probes) <= {p.name for p in self.store.probes()}:
            return self.store.base_ms()
        t = self.frames.time()
        self.opened = True
        b = t[BASE]
        self.store.add_base(
            None if have_base else Row(BASE, 0, b.median_ms, b.p90_ms, b.spread, b.noisy, b.median_ms),
            [Probe(n, t[n].ratio * b.median_ms, b.median_ms) for n in probes],
            self.strategy.block_refs(t, b.median_ms),
        )
        return self.store.base_ms()

    def close_frame(self) -> bool:
        """The closing frame: what the opening frame timed, timed again after the rows (with the
        opening engines where this invocation opened the table). Stored (True), or the measurement
        discarded to be measured again (False: :meth:`Remeasure.discards`)."""
        closing = self.frames.frame()
        moved = shift(opening(self.store), closing)
        if self.remeasure.discards(moved, len(self.store.discarded()), self.opened):
            self.store.discard(moved)
            return False
        self.store.add_closing(closing)
        return True

    def measure_groups(self, base_ms: float) -> None:
        """Every group's grid, then refinement passes where its curve jumps; then the copies.

        Each pass measures the candidates of all groups in shared batches (each group's
        reference in its batch). Pass ``k`` refines only between widths known after pass
        ``k - 1``, so a resumed build measures exactly the widths an uninterrupted one would.
        """
        c = self.config
        sources = [g for g in self.groups.groups if self.strategy.source(g) == g.name]
        copies = [(g, self.strategy.source(g)) for g in self.groups.groups if self.strategy.source(g) != g.name]
        known = {
            g.name: set(grid_widths(g.channels, c.step, c.small, g.partitions, c.coarse_above, c.points)) | {g.channels}
            for g in sources
        }
        pending = {g.name: sorted(w for w in known[g.name] if w < g.channels) for g in sources}
        passes = 1 + (self.config.refine_rounds if self.config.refine else 0)
        for k in range(passes):
            jobs = []
            for g in sources:
                done = self.store.done(g.name)
                todo = [w for w in pending[g.name] if w not in done]
                self.skipped += len(pending[g.name]) - len(todo)
                jobs += [(g, w) for w in todo]
            self._measure(jobs, f"pass {k + 1}")
            if k == passes - 1:
                break
            pending = self._refinements(sources, known, base_ms)
            if not any(pending.values()):
                break
        for i, (group, source) in enumerate(copies):
            self._copy(i, len(copies), group, source)

    def _refinements(
        self, sources: list[ChannelGroup], known: dict[str, set[int]], base_ms: float
    ) -> dict[str, list[int]]:
        """The widths the next pass measures: between known widths where a group's curve jumps."""
        pending = {}
        for g in sources:
            deltas = {r.width: r.delta_ms for r in self.store.rows(g.name) if r.width in known[g.name]}
            deltas[g.channels] = 0.0
            threshold = self.config.jump_ratio * base_ms  # rows are precise to a fraction of it
            pending[g.name] = [w for w in refine_candidates(deltas, threshold, g.partitions) if w not in deltas]
            known[g.name] |= set(pending[g.name])
        return pending

    def _measure(self, jobs: list[tuple[ChannelGroup, int]], label: str) -> None:
        """Time ``(group, width)`` candidates in interleaved batches beside their groups' references."""
        key = self.strategy.ref_key
        per_batch = max(1, self.strategy.per_batch)
        for start in range(0, len(jobs), per_batch):
            chunk = jobs[start : start + per_batch]
            refs = {key(g): self.strategy.reference(g) for g, _ in chunk}
            runners = {(g.name, w): self.strategy.candidate(g, w) for g, w in chunk}
            candidates = {f"ref:{k}": r.timed for k, r in refs.items()}
            candidates.update({f"{g}@{w}": r.timed for (g, w), r in runners.items()})
            timings = measure_interleaved(
                candidates, self.timing, reference={f"{g.name}@{w}": f"ref:{key(g)}" for g, w in chunk}
            )
            rows = []
            for g, w in chunk:
                t, ref = timings[f"{g.name}@{w}"], timings[f"ref:{key(g)}"]
                rows.append(Row(g.name, w, t.ratio * ref.median_ms, t.p90_ms, t.spread, t.noisy, ref.median_ms))
            self.store.add(rows)
            self.measured += len(rows)
            self.noisy += [f"{r.group}@{r.width}" for r in rows if r.noisy]
            for r in runners.values():
                r.close()
            self.progress(TableRows(self.measured, f"{label}: {chunk[-1][0].name}", start + len(chunk) - 1, len(jobs)))

    def _copy(self, index: int, total: int, group: ChannelGroup, source: str) -> None:
        """Store the rows of ``source`` (an identical block, measured earlier) for ``group``."""
        have = self.store.done(group.name)
        rows = [replace(r, group=group.name, copied_from=source) for r in self.store.rows(source)]
        todo = [r for r in rows if r.width not in have]
        self.skipped += len(rows) - len(todo)
        if todo:
            self.store.add(todo)
            self.copied += len(todo)
            log.info("%s: %d rows copied from the identical block of %s", group.name, len(todo), source)
        self.progress(TableRows(self.measured, f"copies: {group.name}", index, total))

    def measure_pairs(self) -> None:
        """Every joined pair once (opt-in ``--pairs``); pairs of identical joint blocks are copied."""
        done = {(p.a, p.b) for p in self.store.pairs()}
        edges = joined_pairs(self.groups)
        for i, (a, b) in enumerate(edges):
            ga, gb = self.groups.by_name[a], self.groups.by_name[b]
            if (a, b) in done:
                self.skipped += 1
                self.strategy.pair_done(ga, gb)  # later identical pairs copy this one
                continue
            self.pair(ga, gb)
            self.progress(TableRows(self.measured, f"{a} x {b}", i, len(edges)))

    def pair(self, a: ChannelGroup, b: ChannelGroup) -> None:

        parts = self.strategy.pair_parts(a, b)
        if parts.copy_of is not None:
            measured = next(p for p in self.store.pairs() if (p.a, p.b) == parts.copy_of)
            self.store.add_pair(replace(measured, a=a.name, b=b.name, copied_from=parts.copy_of))
            self.copied += 1
            return
        widths = (
            half_width(a, self.config.step, self.config.small),
            half_width(b, self.config.step, self.config.small),
        )
        self.store.add_pair(time_pair(parts, a, b, widths, self._prepare, self.groups, self.timing))
        self.measured += 1


def time_pair(
    parts: PairParts,
    a: ChannelGroup,
    b: ChannelGroup,
    widths: tuple[int, int],
    prepare: Callable[..., Runner],
    groups: ModelGroups,
    timing: TimingConfig,
) -> Pair:
    """The joined pair measured: ``a`` and ``b`` each cut to its width alone and together, in the
    strategy's module (``parts``), beside its reference; the engines closed after."""
    wa, wb = widths
    cuts = {"a": {a.name: wa}, "b": {b.name: wb}, "ab": {a.name: wa, b.name: wb}}
    runners = {k: prepare(prune_copy(parts.module, groups, w), parts.inputs) for k, w in cuts.items()}
    try:
        t = measure_interleaved(
            {"ref": parts.reference.timed, **{k: r.timed for k, r in runners.items()}}, timing, reference="ref"
        )
    finally:
        for r in runners.values():
            r.close()
        if parts.owned:
            parts.reference.close()
    ref = t["ref"].median_ms
    return Pair(a.name, b.name, wa, wb, t["ab"].ratio * ref, t["a"].ratio * ref, t["b"].ratio * ref, ref)


def probe_widths(
    groups: ModelGroups, config: LutConfig, resolutions: dict[str, str] | None = None
) -> dict[str, dict[str, int]]:
    """``{probe name: {group: width}}``: every group at the grid width nearest each of ``config.probes``
    (``probe-50``), per resolution of ``resolutions`` (where there are several) only its groups
    at each of ``config.stage_probes`` (``stage-14x14-50``; the others at full width), and the
    designed probes (``design-00``...: :func:`design_widths`)."""

    def near(g: ChannelGroup, share: float) -> int:
        grid = grid_widths(g.channels, config.step, config.small, g.partitions, config.coarse_above, config.points)
        return min(grid, key=lambda w: (abs(w - share * g.channels), w))

    out = {f"probe-{round(100 * share)}": {g.name: near(g, share) for g in groups.groups} for share in config.probes}
    stages = sorted(set((resolutions or {}).values()))
    for stage in stages if len(stages) > 1 else []:
        for share in config.stage_probes:
            widths = {g.name: near(g, share) if resolutions[g.name] == stage else g.channels for g in groups.groups}
            if any(w < g.channels for g, w in zip(groups.groups, widths.values(), strict=True)):
                out[f"stage-{stage}-{round(100 * share)}"] = widths
    return out | design_widths(groups, config)


DESIGN_RATIOS = (0.35, 1.0)  # the designed probes' width ratios (ResNet-50 @224: about 25-95% of the base)
DESIGN_SEED = 20241  # not verify's seed: the plans a table is checked on are not the plans it is fitted to


def design_widths(groups: ModelGroups, config: LutConfig) -> dict[str, dict[str, int]]:
    """``config.designs`` whole-network plans on prune's allowed widths: plan i's width ratio is the
    i-th of evenly spread ratios over ``DESIGN_RATIOS``, each group's drawn around it
    (:func:`~trtprune.lut.grid.widths_around`, as ``trtprune lut verify`` draws its plans), so the plans cover deep and light cuts with the
    groups cut unevenly, as a budget's solution cuts them. Seeded: the same plans for every build."""
    rng = np.random.default_rng(DESIGN_SEED)
    allowed = {g.name: allowed_widths(g, g.channels, config.step) for g in groups.groups}
    lo, hi = DESIGN_RATIOS
    out = {}
    for i in range(config.designs):
        out[f"design-{i:02d}"] = widths_around(rng, allowed, lo + (hi - lo) * (i + 0.5) / config.designs)
    return out


def half_width(group: ChannelGroup, step: int, small: int) -> int:
    """The grid width nearest half the group (where a pair's interaction is measured)."""
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


def build_into(
    config: LutConfig,
    loaded: LoadedModel,
    groups: ModelGroups,
    store: LutStore,
    progress: Progress | None = None,
    remeasure: Remeasure = Remeasure(),
) -> TableBuilder:
    """Measure (or finish measuring) ``loaded``'s table into an open ``store`` whose meta is set;
    returns the finished builder (its counts of rows measured, skipped, copied, engines built), whose
    cost the table adds to its total (:meth:`LutStore.cost`), interrupted or not."""
    start = time.perf_counter()
    builder = TableBuilder(config, loaded, groups, store, progress, remeasure)
    try:
        builder.run()
    finally:
        store.add_cost(builder.engines, builder.measured, builder.copied, time.perf_counter() - start)
    return builder


def build_lut(
    config: LutConfig,
    out: str | os.PathLike[str],
    progress: Progress | None = None,
    force: bool = False,
    remeasure: Remeasure = Remeasure(),
) -> LutResult:
    """Measure (or finish measuring) the table for ``config`` into ``out``; measure it again where
    its frame moved (``remeasure``)."""

    start = time.perf_counter()
    backend = get_backend(config.backend)
    backend.check_available(config.backend_config)
    loaded = load_for_lut(config)
    groups = find_groups(loaded.model, loaded.input_shape)
    with LutStore(out, create=True) as store:
        store.init_meta(table_meta(loaded, groups, config), force=force)
        builder = build_into(config, loaded, groups, store, progress, remeasure)
        base_ms, moved, discarded = store.base_ms(), frame_shift(store), store.discarded()
    return LutResult(
        Path(out),
        builder.measured,
        builder.skipped,
        builder.engines,
        time.perf_counter() - start,
        base_ms,
        builder.noisy,
        builder.copied,
        moved,
        discarded,
    )
