"""What a prune run is asked to do: the table, the budget, the method, the recipe, where to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trtprune.core.errors import UsageError
from trtprune.core.records import Record
from trtprune.methods import get_method
from trtprune.train.loop import TrainConfig

if TYPE_CHECKING:
    from trtprune.methods import Method


@dataclass(frozen=True)
class PruneConfig(Record):
    """One prune run: the table, the budget, the method, the fine-tuning recipe, where to write."""

    FORMAT = 2  # format 1 had force_table (never read)
    REMOVED = {"force_table": 2}

    lut: str
    budget_ms: float | None = None
    budget_ratio: float | None = None
    model: str | None = None
    checkpoint: str | None = None
    input_shape: str | None = None
    data: str = "fashion-mnist"
    data_root: str | None = None
    method: str = "sp-lamp"
    importance: str | None = None  # the channel scorer, for methods that take one (sp-lamp)
    method_options: dict[str, Any] = field(default_factory=dict)
    stages: int = 1
    finetune_epochs: int = 1  # per stage and for the final fine-tune; 0: prune, match and export only
    lr: float = 0.01
    batch_size: int = 128
    round_to: int | None = None  # default: the table's grid step
    remeasure: bool = False
    out: str | None = None
    calib: str | None = None
    seed: int = 0
    limit_train: int | None = None
    limit_eval: int | None = None  # stage-by-stage top-1 on the first N test samples (the report's is on all)
    repair_rounds: int = 6  # decide-and-measure rounds per stage to land just under the stage target
    match_tolerance: float = 0.03  # stop once a choice measures within this share under the target
    # aim this share under each stage target: the same model measured again later (the report's and
    # compare's measurements) moves by about its spread, 1-2.5% on the machines measured here
    match_margin: float = 0.02
    device: str = "auto"  # where fine-tuning runs: CUDA where present, else the CPU (latency is always measured in the table's engine)
    workers: int = 0  # data-loading processes per rank (ImageFolder decoding)
    distill: bool = False  # fine-tune against the unpruned model's logits
    distill_temperature: float = 4.0
    distill_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.finetune_epochs < 0 or self.stages < 1:
            raise UsageError(
                f"--finetune-epochs must be >= 0 and --stages >= 1, not {self.finetune_epochs} and {self.stages}"
            )
        if not self.distill_temperature > 0 or not 0 <= self.distill_weight <= 1:
            raise UsageError(
                f"--distill-temperature must be > 0 and --distill-weight in [0, 1], not {self.distill_temperature} "
                f"and {self.distill_weight}"
            )

    def make_method(self) -> Method:

        options = dict(self.method_options)
        if self.importance is not None:
            options["importance"] = self.importance
        return get_method(self.method, options)

    def budget_of(self, base_ms: float) -> float:
        """The budget in the table's milliseconds (``budget_ratio`` is a share of ``base_ms``)."""
        if (self.budget_ms is None) == (self.budget_ratio is None):
            raise UsageError("give exactly one of --budget-ms or --budget-ratio")
        budget = self.budget_ms if self.budget_ms is not None else self.budget_ratio * base_ms
        if budget >= base_ms:
            raise UsageError(
                f"budget {budget:.4f} ms is not below the base latency {base_ms:.4f} ms: nothing to prune; "
                "lower the budget"
            )
        if budget <= 0:
            raise UsageError(f"budget must be positive, not {budget}")
        return budget

    def finetune(self, seed_offset: int, epochs: int | None = None):
        """The fine-tuning recipe of one stage (or the final fine-tune), seeded apart from the others."""

        return TrainConfig(
            epochs=self.finetune_epochs if epochs is None else epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed + seed_offset,
            device=self.device,
            workers=self.workers,
            limit_train=self.limit_train,
            limit_test=self.limit_eval,
        )
