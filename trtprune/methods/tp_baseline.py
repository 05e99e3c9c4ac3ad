"""The Torch-Pruning baseline (``torch-pruning``): the tool users would otherwise pick, as they use it.

Torch-Pruning 1.6's own pruner and group importance decide which channels go:
``tp.pruner.MetaPruner`` with ``tp.importance.GroupMagnitudeImportance(p=2)`` (its
defaults: local pruning, one ratio for every group, group L2 averaged over the coupled
layers and mean-normalised). Torch-Pruning has no latency model, so its one knob, the
pruning ratio, is set from MACs (the smallest ratio whose MACs are within the goal's share
of the base MACs) and the shared matching loop iterates the goal until the exported
model *measures* at the stage target, as for every method. ``round_to`` stays at Torch-
Pruning's default (None): with ``round_to=8`` it skips every group whose rounded width would
be 0 (a 16-channel group at ratio >= 0.5 stays whole), so its widths jump back as the ratio grows.

Staged runs: the pruner sees a copy of the soft-masked model whose removed channels are zeroed
on every coupled layer (consumers included), so they have zero importance and go first, and
the ratio never falls below the previous stage's.
"""

from __future__ import annotations

import copy
import logging

import numpy as np

from trtprune.core.errors import InfeasibleBudget
from trtprune.decide.decision import Decision
from trtprune.methods.base import METHODS, Method, StageState
from trtprune.methods.description import MethodDescription
from trtprune.methods.macs import MacCost
from trtprune.surgery.apply import zero_removed
from trtprune.surgery.plan import Plan

log = logging.getLogger(__name__)


def tp_width(channels: int, ratio: float) -> int:
    """The width MetaPruner's local pruning keeps of a group at ``ratio`` (round_to None); a
    group it would empty is skipped (kept whole), as Torch-Pruning does."""
    kept = int(channels * (1 - ratio))
    return kept if kept > 0 else channels


def _smallest(ok, lo: float, hi: float) -> float:
    """The smallest ratio in [lo, hi] where ``ok`` holds (``ok(hi)`` must; monotone), by bisection."""
    if ok(lo):
        return lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


@METHODS.register("torch-pruning")
class TorchPruning(Method):
    name = "torch-pruning"

    def __init__(self, p: int = 2) -> None:
        self.p = p

    def score(self, state: StageState) -> dict[str, np.ndarray]:
        return {g.name: np.zeros(g.channels) for g in state.groups.groups}  # Torch-Pruning ranks inside decide

    def decide(self, state: StageState, goal_ms: float):

        cost = MacCost.of_table(state.latency)
        groups = state.groups.groups

        def predicted(ratio: float) -> float:
            return cost.predict_widths({g.name: tp_width(g.channels, ratio) for g in groups})

        hi = 1.0 - 1.0 / min(g.channels for g in groups)  # every group keeps one channel
        if predicted(hi) > goal_ms:
            raise InfeasibleBudget(f"torch-pruning at ratio {hi:.3f} predicts {predicted(hi):.4f} ms", predicted(hi))
        # never below the ratio the earlier stages reached (it would keep removed channels)
        lo = _smallest(lambda r: all(tp_width(g.channels, r) <= state.current[g.name] for g in groups), 0.0, hi)
        ratio = lo if predicted(lo) <= goal_ms else _smallest(lambda r: predicted(r) <= goal_ms, lo, hi)
        plan, widths = self._prune(state, ratio)
        return Decision(plan, widths, cost.predict_widths(widths), 0.0)

    def _prune(self, state: StageState, ratio: float):
        """Torch-Pruning's choice at ``ratio`` on the soft-masked model, as a plan of the base model."""
        import torch
        import torch_pruning as tp

        model = copy.deepcopy(state.model).eval()
        if state.plan is not None:
            zero_removed(state.groups, state.plan, model)
        producers = {layer for g in state.groups.groups for layer in g.producers}
        ignored = [
            m
            for n, m in model.named_modules()
            if isinstance(m, torch.nn.modules.conv._ConvNd | torch.nn.Linear) and n not in producers
        ]
        pruner = tp.pruner.MetaPruner(
            model,
            torch.randn(*state.groups.example_input.shape),
            importance=tp.importance.GroupMagnitudeImportance(p=self.p),
            pruning_ratio=ratio,
            ignored_layers=ignored,
        )
        names = {m: n for n, m in model.named_modules()}
        plan = Plan(model=state.model_name, input_shape=tuple(state.groups.example_input.shape))
        for tp_group in pruner.step(interactive=True):  # read its choice; the pipeline applies it
            name = names[tp_group[0].dep.target.module]
            group = state.groups.by_name.get(name)
            if group is None:
                continue
            drop = {int(i) for i in tp_group[0].idxs}
            plan.groups[name] = [i for i in range(group.channels) if i not in drop]
        widths = {g.name: len(plan.groups.get(g.name, range(g.channels))) for g in state.groups.groups}
        return plan, widths

    def describe(self) -> MethodDescription:
        return MethodDescription(
            method=self.name,
            importance=f"torch-pruning GroupMagnitudeImportance(p={self.p})",
            pruner="torch_pruning.pruner.MetaPruner (local, one ratio)",
            latency="MACs to set the ratio; matched to measured latency by the shared loop",
        )
