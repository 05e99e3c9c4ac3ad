"""What a prune run is asked to do: the table, the budget, the method, the recipe, where to write."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from trtprune.core.errors import UsageError
from trtprune.core.records import Record
from trtprune.decide.matching import MatchPolicy
from trtprune.methods import get_method
from trtprune.train.config import FINETUNE, DistillConfig, TrainConfig

if TYPE_CHECKING:
    from trtprune.methods import Method


LEGACY_KEYS = {  # format <= 2 kept the recipe flat: key -> (nested field, its key)
    "finetune_epochs": ("finetune", "epochs"),
    "lr": ("finetune", "lr"),
    "batch_size": ("finetune", "batch_size"),
    "device": ("finetune", "device"),
    "workers": ("finetune", "workers"),
    "limit_train": ("finetune", "limit_train"),
    "limit_eval": ("finetune", "limit_test"),
    "distill_temperature": ("distill", "temperature"),
    "distill_weight": ("distill", "weight"),
    "repair_rounds": ("match", "rounds"),
    "match_tolerance": ("match", "tolerance"),
    "match_margin": ("match", "margin"),
}


@dataclass(frozen=True)
class PruneConfig(Record):
    """One prune run: the table, the budget, the method, where to write, and each step's part:
    ``finetune`` (the recipe of every stage's fine-tune; ``epochs`` 0: prune, match and export only,
    each stage evaluated on ``limit_test``; its seed is the run's ``seed`` plus the stage),
    ``final_finetune`` (the recipe of the fine-tune after physical pruning; None: ``finetune``'s),
    ``distill`` (None: plain cross-entropy) and ``match`` (landing on the measured target)."""

    FORMAT = 3  # format 1 had force_table (never read); format 2 kept the recipe flat (LEGACY_KEYS)
    REMOVED = {"force_table": 2}
    NESTED = {"finetune": TrainConfig, "final_finetune": TrainConfig, "distill": DistillConfig, "match": MatchPolicy}

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
    round_to: int | None = None  # default: the table's grid step
    remeasure: bool = False
    out: str | None = None
    calib: str | None = None
    seed: int = 0
    finetune: TrainConfig = FINETUNE
    final_finetune: TrainConfig | None = None  # None (every file before it): the stages' recipe
    distill: DistillConfig | None = None
    match: MatchPolicy = MatchPolicy()

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise UsageError(f"--stages must be >= 1, not {self.stages}")

    @classmethod
    def from_json(cls, obj: Any, source: str | None = None) -> PruneConfig:
        """Format 3 as it is; formats 1-2 (the flat recipe) moved into their nested parts first."""
        if isinstance(obj, dict) and obj.get("format", 1) < 3:
            obj = _nest_legacy(obj)
        return super().from_json(obj, source)

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

    def recipe(self, stage: int) -> TrainConfig:
        """The fine-tuning recipe of ``stage`` (1..stages; 0: the final fine-tune), each seeded apart
        from the others: the run's seed plus the stage's index (the final one's is ``stages``)."""
        if stage == 0:
            return replace(self.final_finetune or self.finetune, seed=self.seed + self.stages)
        return replace(self.finetune, seed=self.seed + stage - 1)


def _nest_legacy(obj: dict[str, Any]) -> dict[str, Any]:
    """A format-1/2 config's flat recipe keys moved into ``finetune``/``distill``/``match``, with the
    defaults those formats had (``distill`` only where it was on)."""
    out = {k: v for k, v in obj.items() if k not in LEGACY_KEYS and k != "distill"}
    parts: dict[str, dict[str, Any]] = {"finetune": FINETUNE.to_json(), "distill": {}, "match": {}}
    for key, (part, name) in LEGACY_KEYS.items():
        if key in obj:
            parts[part][name] = obj[key]
    out["finetune"] = parts["finetune"]
    out["distill"] = parts["distill"] if obj.get("distill") else None
    out["match"] = parts["match"]
    return out
