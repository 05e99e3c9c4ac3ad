"""A table's build configuration: what to measure (model, input, grid) and how (engine, timing)."""

from __future__ import annotations

from dataclasses import dataclass

from trtprune.backends import BackendConfig
from trtprune.core.errors import UsageError
from trtprune.core.records import Record
from trtprune.engine.timing import TimingConfig
from trtprune.lut.grid import BETWEEN

MODES = ("network", "block")


@dataclass(frozen=True)
class LutConfig(Record):
    """What to measure and how."""

    FORMAT = 5  # format 1 had ``precision`` (now ``row_error``), ``block_noise_share``, ``block_min_rounds``
    REMOVED = {"precision": 2, "block_noise_share": 2, "block_min_rounds": 2}
    # tables of format 2 and before: every step measured, read as a staircase, no designed probes
    # tables of format 3 and before: no closing frame; of format 4 and before: scales in [1/2, 2], weight in [0, 1]
    ADDED = {
        "points": (3, None),
        "between": (3, "staircase"),
        "designs": (3, 0),
        "closing": (4, False),
        "scale_bounds": (5, (0.5, 2.0)),
        "weight_bounds": (5, (0.0, 1.0)),
    }
    NESTED = {"backend_config": BackendConfig, "timing": TimingConfig}

    model: str | None
    input_shape: str | tuple[int, ...] | None = None
    checkpoint: str | None = None
    backend: str = "ort"
    backend_config: BackendConfig = BackendConfig()
    batch: int | None = None
    mode: str = "network"
    step: int = 8
    small: int = 16  # groups of at most this many channels are measured at every width
    # groups wider than this start on a grid of 2 x step (refinement still bisects where the curve
    # jumps): a ResNet-50 @224 table builds 810 engines instead of 996 (benchmarks/results/lut_fidelity-resnet50-*.md)
    coarse_above: int | None = 512
    # at most this many widths per group on the first grid, spread evenly over the step's multiples
    # (None: every multiple, or every second one above ``coarse_above``): a ResNet-50 @224 block
    # table builds about a fifth of the engines (benchmarks/results/lut_fidelity.md)
    points: int | None = 6
    # how a width between two measured ones is read: ``linear`` (a sparse grid) or ``staircase``
    # (the next measured width up; tables of format 2 and before); None: linear with ``points``,
    # a staircase without
    between: str | None = None
    refine: bool = True
    refine_rounds: int = 2
    # joined pairs of groups cut together (a measured interaction term per pair), opt-in: the
    # probes below fit one joined-layer weight for the whole table, which is cheaper and, in
    # benchmarks/results/lut_fidelity-*.md, enough
    pairs: bool = False
    # whole networks with every group cut to these shares of its channels (on the grid), timed
    # beside the unpruned network: the prediction fits its joined-layer weight to them
    probes: tuple[float, ...] = (0.75, 0.5, 0.3)
    # per resolution (a stage of the network), whole networks with only that stage's groups cut to
    # these shares, timed beside the unpruned network: more probes for the stage scales (what a block
    # timed alone misses of its stage's cuts in the whole network). None by default since format 3:
    # the designed probes below cut every stage by random amounts, and the scales are fitted to them
    stage_probes: tuple[float, ...] = ()
    # designed probes: this many whole networks with every group at a random allowed width (width
    # ratios spread evenly over 35-100%, seeded, so every build of a model times the same plans),
    # timed beside the unpruned network; the joined-layer weight and the stage scales are fitted to
    # them with the probes above: plans like the ones prune picks, not uniform cuts alone
    designs: int = 12
    # the closing frame: the network, its probes and (block mode) its unpruned blocks timed again after
    # the rows, with the engines that opened the table; shares are read as the mean of both frames,
    # and the build reports how far its frame moved (:mod:`trtprune.lut.frames`)
    closing: bool = True
    # where the fit to the probes may take each stage's scale and the joined-layer weight: wider than
    # tables of format 4 and before, whose fits stopped at a bound on small inputs (ResNet-18 @64: the
    # 16x16 stage at 2.0, the weight at 1.0; share error 11.8% / 22.8% there, 9.8% / 21.2% with
    # these; OpenVINO's ResNet-18 @224 2.25% / 3.63% -> 1.69% / 3.35%, no case worse:
    # benchmarks/results/lut_fidelity_bounds.md)
    scale_bounds: tuple[float, float] = (0.25, 4.0)
    weight_bounds: tuple[float, float] = (0.0, 2.0)
    jump_ratio: float = 0.01  # a jump: a latency change above this share of the base (5x a row's target error)
    candidates_per_batch: int = 6
    # every row's change is timed until its standard error is at most this share of the base
    # network (after ``timing.min_rounds`` rounds, at most ``timing.rounds``), in both modes: a
    # change of a small block is known sooner than the same change read off two whole networks
    row_error: float = 0.002
    timing: TimingConfig = TimingConfig(rounds=100, min_rounds=8)
    # block mode: a group's sub-graph is measured once per distinct structure (a ResNet stage's
    # identical blocks share one curve; the copies name their source in ``copied_from``)
    dedupe: bool = True
    # block mode's cheaper timing: blocks are small, so shorter samples (the floor below, never
    # above ``timing``'s), a short warm-up between back-to-back batches (the machine is already
    # in its sustained state) and bigger batches (candidates of several groups, each group's
    # unpruned block beside them) amortize the fixed costs
    block_min_sample_ms: float = 2.0
    block_warmup_ms: float = 50.0
    block_warmup: int = 3  # untimed runs per new engine before its calibration
    block_candidates_per_batch: int = 16

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown table mode {self.mode!r}; use network or block")
        if self.step < 1:
            raise UsageError(f"--step must be >= 1, not {self.step}")
        if not 0 < self.row_error < 1:
            raise UsageError(f"--row-error is a share of the base latency in (0, 1), not {self.row_error}")
        if self.points is not None and self.points < 2:
            raise UsageError(f"--points must be >= 2 (or none: every step), not {self.points}")
        if self.between is None:
            object.__setattr__(self, "between", "linear" if self.points else "staircase")
        if self.between not in BETWEEN:
            raise UsageError(f"unknown rule between widths {self.between!r}; use {' or '.join(BETWEEN)}")
        if self.designs < 0:
            raise UsageError(f"--designs must be >= 0, not {self.designs}")
        if self.timing.rounds < 1:
            raise UsageError(f"--rounds must be >= 1, not {self.timing.rounds}")
