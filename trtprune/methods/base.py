"""The method interface and its registry."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.core.errors import TrtpruneError, UsageError
from trtprune.core.registry import Registry
from trtprune.decide.decision import Decision
from trtprune.decide.importance import (
    NEEDS_PROBE,
    NEEDS_TAYLOR,
    ScoreContext,
    cross_entropy,
    loss_probe,
    score_groups,
    taylor_per_layer,
)
from trtprune.lut.grid import allowed_widths
from trtprune.methods.description import MethodDescription
from trtprune.surgery.plan import top_k_plan

if TYPE_CHECKING:
    from torch import nn

    from trtprune.decide.decision import Decision
    from trtprune.decide.importance import ScoreContext
    from trtprune.graph.groups import ModelGroups
    from trtprune.lut.predict import LatencyModel
    from trtprune.surgery.plan import Plan

METHODS: Registry[type[Method]] = Registry("method")

# method name -> module that registers it (imported on first use: heavy methods stay lazy)
_MODULES = {
    "sp-lamp": "trtprune.methods.sp_lamp",
    "halp": "trtprune.methods.halp",
    "lap": "trtprune.methods.lap",
    "uniform": "trtprune.methods.uniform",
    "global-l1": "trtprune.methods.uniform",
    "sp-lamp-macs": "trtprune.methods.macs",
    "torch-pruning": "trtprune.methods.tp_baseline",
    "modelopt-fastnas": "trtprune.methods.modelopt_fastnas",
}


def method_class(name: str) -> type[Method]:
    """The registered class of method ``name`` (its module imported on first use)."""
    if name in _MODULES and name not in METHODS:
        importlib.import_module(_MODULES[name])
    return METHODS.get(name)


def method_options(name: str) -> list[str]:
    """The options method ``name`` takes (its constructor's keyword arguments)."""
    params = inspect.signature(method_class(name).__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


def get_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """A fresh instance of method ``name`` (one per prune run: methods may keep state across stages)."""

    options = options or {}
    valid = method_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        takes = f"it takes: {', '.join(valid)}" if valid else "it takes none"
        raise UsageError(f"method {name!r} does not take option {unknown[0]!r}; {takes}")
    return method_class(name)(**options)


def parse_method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:KEY=VALUE...]`` -> (name, options), e.g. ``sp-lamp:importance=sp-lamp-group``.

    Values that read as integers or floats become numbers. The spec is checked against the
    method's options (:func:`get_method` raises a one-line usage error naming the valid ones).
    """

    name, *parts = spec.strip().split(":")
    options: dict[str, Any] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise UsageError(f"method spec {spec!r}: write options as NAME:KEY=VALUE, e.g. sp-lamp:importance=sp-lamp")
        options[key.strip()] = _number_or_text(value.strip())
    get_method(name, options)  # fails now, naming the choices, rather than after earlier runs
    return name, options


def _number_or_text(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def method_names() -> list[str]:
    return sorted(_MODULES)


Batches = Callable[[int], Iterable[Any]]  # n -> n shuffled training batches (a fixed order per run)


def _no_batches(n: int) -> Iterable[Any]:

    raise TrtpruneError("this method needs training data: run it through trtprune prune (with --data)")


@dataclass(frozen=True)
class MethodContext:
    """What a method may use once, before the first stage (:meth:`Method.setup`): the unpruned
    model and its groups, the table and where it lives, and the training data."""

    model: nn.Module
    input_shape: tuple[int, ...]
    groups: ModelGroups
    latency: LatencyModel
    lut_path: str
    data: str
    data_root: str | None
    seed: int = 0
    batches: Batches = _no_batches
    workdir: str | None = None  # where a method may keep resumable work (the run's RUN.partial/resume/)


@dataclass
class StageState:
    """What a method sees at one stage: the (soft-masked, full-shape) model and its groups,
    the table (``latency``, in the table's milliseconds), the widths kept so far, the earlier
    stages' plan, and training batches for methods whose scores need gradients."""

    model: nn.Module
    groups: ModelGroups
    latency: LatencyModel
    current: dict[str, int]
    round_to: int | None
    model_name: str
    stage: int
    stages: int
    seed: int
    plan: Plan | None = None  # the earlier stages' decision (None at the first stage)
    batches: Batches = _no_batches
    loss: Callable[..., Any] = cross_entropy  # (model, batch, device) -> the batch's loss (the task's)
    scores: dict[str, np.ndarray] = field(default_factory=dict)


class Method:
    """One pruning method. Subclasses override :meth:`score` and/or :meth:`decide`."""

    name = "method"
    importance = "sp-lamp"  # the scorer used by the default :meth:`score`
    tasks: tuple[str, ...] = ("classify", "detect")  # the model tasks it can prune

    def schedule(self, base_ms: float, budget_ms: float, stages: int) -> list[float]:
        """Per-stage latency targets ending at the budget: linear steps (SP-LAMP Sec. 3.3)."""
        return [base_ms - (base_ms - budget_ms) * s / stages for s in range(1, stages + 1)]

    def setup(self, context: MethodContext) -> None:
        """One-off work before the first stage (e.g. measuring a method's own table)."""

    taylor_batches = 10  # mini-batches the Taylor sensitivities are averaged over (HALP's 10)

    def score(self, state: StageState) -> dict[str, np.ndarray]:
        """One score per channel of every group, higher is kept first."""

        return score_groups(state.groups, self.importance, score_context(state, self.importance, self.taylor_batches))

    def decide(self, state: StageState, goal_ms: float) -> Decision:
        """Widths and kept channels whose predicted latency is at most ``goal_ms`` (table ms)."""
        raise NotImplementedError

    def describe(self) -> MethodDescription:
        """What the report records about the method (its settings and costs)."""
        return MethodDescription(self.name)


def score_context(state: StageState, importance: str, taylor_batches: int) -> ScoreContext:
    """The scorer's context at this stage: Taylor sensitivities, or the loss probe, from
    ``taylor_batches`` training mini-batches where the importance reads them."""

    context = ScoreContext(seed=state.seed)
    if importance in NEEDS_TAYLOR:
        context.taylor = taylor_per_layer(state.model, state.batches(taylor_batches), loss=state.loss)
    if importance in NEEDS_PROBE:
        context.probe = loss_probe(
            state.model, state.groups, state.batches(taylor_batches), state.model_name, loss_of=state.loss
        )
    return context


def allowed_widths_of(state: StageState) -> dict[str, np.ndarray]:
    """Every group's allowed widths at this stage (:func:`trtprune.decide.decision.allowed_widths`)."""

    return {g.name: allowed_widths(g, state.current[g.name], state.round_to) for g in state.groups.groups}


def width_decision(state: StageState, widths: dict[str, int], value: float = 0.0) -> Decision:
    """A decision keeping the ``widths[g]`` best-scored channels of each group."""

    plan = top_k_plan(state.groups, state.scores, widths, state.model_name)
    return Decision(plan, dict(widths), state.latency.predict_widths(widths), value)
