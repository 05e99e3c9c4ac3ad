"""The method interface and its registry."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from trtprune.decision import Decision
    from trtprune.groups import ModelGroups
    from trtprune.lut.predict import LatencyModel

METHODS: Registry[type[Method]] = Registry("method")

# method name -> module that registers it (imported on first use: heavy methods stay lazy)
_MODULES = {
    "sp-lamp": "trtprune.methods.sp_lamp",
    "halp": "trtprune.methods.halp",
    "lap": "trtprune.methods.lap",
    "uniform": "trtprune.methods.uniform",
    "global-l1": "trtprune.methods.uniform",
}


def get_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """A fresh instance of method ``name`` (one per prune run: methods may keep state across stages)."""
    if name in _MODULES and name not in METHODS:
        importlib.import_module(_MODULES[name])
    return METHODS.get(name)(**(options or {}))


def method_names() -> list[str]:
    return sorted(_MODULES)


@dataclass
class StageState:
    """What a method sees at one stage: the (soft-masked, full-shape) model and its groups,
    the table (``latency``, in the table's milliseconds), the widths kept so far, and the job
    (data, configuration, engine) for methods that train or evaluate."""

    model: nn.Module
    groups: ModelGroups
    latency: LatencyModel
    current: dict[str, int]
    round_to: int | None
    model_name: str
    stage: int
    stages: int
    seed: int
    job: Any = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)


class Method:
    """One pruning method. Subclasses override :meth:`score` and/or :meth:`decide`."""

    name = "method"
    importance = "sp-lamp"  # the scorer used by the default :meth:`score`

    def schedule(self, base_ms: float, budget_ms: float, stages: int) -> list[float]:
        """Per-stage latency targets ending at the budget: linear steps (SP-LAMP Sec. 3.3)."""
        return [base_ms - (base_ms - budget_ms) * s / stages for s in range(1, stages + 1)]

    def setup(self, job: Any) -> None:
        """One-off work before the first stage (e.g. measuring a method's own table)."""

    def score(self, state: StageState) -> dict[str, np.ndarray]:
        """One score per channel of every group, higher is kept first."""
        from trtprune.importance import ScoreContext, accumulate_grads, score_groups

        context = ScoreContext(seed=state.seed)
        if self.importance == "taylor-bn":
            context.grads = accumulate_grads(state.model, state.job.batches(4))
        return score_groups(state.groups, self.importance, context)

    def decide(self, state: StageState, goal_ms: float) -> Decision:
        """Widths and kept channels whose predicted latency is at most ``goal_ms`` (table ms)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the report records about the method (its settings and costs)."""
        return {"method": self.name}


def allowed_widths_of(state: StageState) -> dict[str, np.ndarray]:
    """Every group's allowed widths at this stage (:func:`trtprune.decision.allowed_widths`)."""
    from trtprune.decision import allowed_widths

    return {g.name: allowed_widths(g, state.current[g.name], state.round_to) for g in state.groups.groups}


def width_decision(state: StageState, widths: dict[str, int], value: float = 0.0) -> Decision:
    """A decision keeping the ``widths[g]`` best-scored channels of each group."""
    from trtprune.decision import Decision
    from trtprune.plan import top_k_plan

    plan = top_k_plan(state.groups, state.scores, widths, state.model_name)
    return Decision(plan, dict(widths), state.latency.predict_widths(widths), value)
