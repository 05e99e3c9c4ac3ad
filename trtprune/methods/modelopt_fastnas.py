"""NVIDIA Model Optimizer's FastNAS (``modelopt-fastnas``): what a TensorRT user reaches for, as they use it.

``modelopt.torch.prune.prune(model, mode="fastnas", constraints={"flops": ...}, ...)`` decides:
it sorts every prunable width by its own importance, measures how much a score drops at each
width of each layer (its sensitivity map), then bisects a sensitivity threshold until the
subnet's FLOPs meet the constraint. The score is top-1 on ``score_batches`` training batches
(the run's seeded training order, never the test split); ``calib_batches`` more re-estimate
the batch norms of each subnet, as FastNAS does. FastNAS has no latency model: the FLOPs
constraint is the goal's share of the base latency, and the shared matching loop moves the goal
until the exported model *measures* at the stage target in the table's engine, as for every
method. ``divisor`` sets FastNAS's channel divisor (its default, 32, leaves ResNet-20's 16- and
32-channel layers whole; 8 is TensorRT's tensor-core multiple).

Resumable: each stage's search checkpoint (its sensitivity map) is kept in the run's work
directory, so a resumed run and every goal of the matching loop reuse it. Staged runs: FastNAS
sees a copy of the soft-masked model with the removed channels zeroed on every coupled layer;
a channel removed earlier is never kept again.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from pathlib import Path

import numpy as np

from trtprune.core.errors import InfeasibleBudget, UnsupportedModelError, UsageError
from trtprune.decide.decision import Decision
from trtprune.methods.base import METHODS, Method, MethodContext, StageState
from trtprune.methods.description import MethodDescription
from trtprune.methods.macs import MacCost
from trtprune.surgery.apply import zero_removed
from trtprune.surgery.plan import Plan

log = logging.getLogger(__name__)

INSTALL = "pip install nvidia-modelopt 'torchprofile==0.0.4' requests"


def _modelopt():
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            import modelopt.torch.prune as mtp
    except ImportError as exc:
        raise UsageError(
            f"method modelopt-fastnas needs NVIDIA Model Optimizer ({exc.name} is missing): {INSTALL}"
        ) from None
    return mtp


@METHODS.register("modelopt-fastnas")
class ModeloptFastNAS(Method):
    name = "modelopt-fastnas"

    def __init__(self, divisor: int = 8, score_batches: int = 8, calib_batches: int = 4) -> None:
        if divisor < 1 or score_batches < 1 or calib_batches < 1:
            raise UsageError("modelopt-fastnas: divisor, score_batches and calib_batches must be at least 1")
        self.divisor, self.score_batches, self.calib_batches = divisor, score_batches, calib_batches
        self.workdir: Path | None = None

    def setup(self, context: MethodContext) -> None:
        _modelopt()  # missing: one line now, not after the first fine-tune
        self.workdir = Path(context.workdir) if context.workdir else None

    def score(self, state: StageState) -> dict[str, np.ndarray]:
        return {g.name: np.zeros(g.channels) for g in state.groups.groups}  # FastNAS ranks inside decide

    def decide(self, state: StageState, goal_ms: float):

        cost = MacCost.of_table(state.latency)
        share = min(goal_ms / cost.base_ms, 1.0)
        try:
            subnet = self._search(state, share)
        except ValueError as exc:  # FastNAS: no subnet of its search space meets the constraint
            smallest = cost.predict_widths({g.name: min(g.channels, self.divisor) for g in state.groups.groups})
            raise InfeasibleBudget(
                f"modelopt-fastnas: no subnet within {100 * share:.1f}% of the base FLOPs ({exc or 'FastNAS'})",
                smallest,
            ) from None
        plan = _plan_of(state, subnet)
        widths = {g.name: len(plan.groups.get(g.name, range(g.channels))) for g in state.groups.groups}
        return Decision(plan, widths, cost.predict_widths(widths), 0.0)

    def _search(self, state: StageState, share: float):
        """FastNAS's subnet under ``share`` of the base FLOPs, from a copy of the stage's model."""
        import torch

        mtp = _modelopt()
        # FastNAS refuses channels-last weights (the fine-tune's format on CPU)
        model = copy.deepcopy(state.model).eval().to(memory_format=torch.contiguous_format)
        if state.plan is not None:
            zero_removed(state.groups, state.plan, model)
        batches = list(state.batches(self.score_batches + self.calib_batches))
        scored, calib = batches[: self.score_batches], batches[self.score_batches :]

        def top1(m) -> float:
            with torch.no_grad():
                return sum(float((m(x).argmax(1) == y).sum()) for x, y in scored) / sum(len(y) for _, y in scored)

        rules = {"channel_divisor": self.divisor}
        mode = [
            (
                "fastnas",
                {
                    "nn.Conv2d": {"*": rules},
                    "nn.BatchNorm2d": {"*": {"feature_divisor": self.divisor}},
                    "nn.Linear": {"*": {"feature_divisor": self.divisor}},
                },
            )
        ]
        config = {"score_func": top1, "data_loader": calib, "verbose": False}
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            config["checkpoint"] = str(self.workdir / f"fastnas-stage{state.stage}.pth")
        example = torch.zeros(*state.groups.example_input.shape)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            subnet, _ = mtp.prune(
                model, mode=mode, constraints={"flops": f"{100 * share:.4f}%"}, dummy_input=example, config=config
            )
        log.info("modelopt-fastnas: subnet at %.1f%% of the base FLOPs", 100 * share)
        return subnet

    def describe(self) -> MethodDescription:
        return MethodDescription(
            method=self.name,
            importance="modelopt FastNAS sensitivity (top-1 on training batches)",
            search=f"modelopt.torch.prune fastnas, channel divisor {self.divisor}, FLOPs constraint",
            latency="FLOPs share of the goal; matched to measured latency by the shared loop",
        )


def _plan_of(state: StageState, subnet):
    """The channels FastNAS kept, as a plan of the base model. FastNAS sorts and slices channels;
    each kept channel is found again by its batch norm's (weight, bias), which sorting and slicing
    carry unchanged. Channels removed at earlier stages (zeroed) are not kept again."""

    modules = dict(subnet.named_modules())
    base = dict(state.model.named_modules())
    earlier = state.plan.groups if state.plan is not None else {}
    plan = Plan(model=state.model_name, input_shape=tuple(state.groups.example_input.shape))
    for group in state.groups.groups:
        norm = next((m for m in group.members if m.role == "out" and m.kind.startswith("BatchNorm")), None)
        if norm is None:
            raise UnsupportedModelError(
                f"modelopt-fastnas: group {group.name} has no batch norm to find FastNAS's kept channels by"
            )
        ours, theirs = base[norm.layer], modules[norm.layer]
        if theirs.num_features == ours.num_features:
            continue  # FastNAS kept the whole layer
        key = {
            (float(w), float(b)): int(i)
            for i, (w, b) in enumerate(zip(ours.weight.detach().tolist(), ours.bias.detach().tolist(), strict=True))
        }
        local = {
            key.get((float(w), float(b))) for w, b in zip(theirs.weight.tolist(), theirs.bias.tolist(), strict=True)
        }
        to_group = dict(zip(norm.idxs, norm.root_idxs, strict=True))
        allowed = set(earlier.get(group.name, range(group.channels)))
        kept = sorted({to_group[i] for i in local if i in to_group} & allowed)
        plan.groups[group.name] = kept or sorted(allowed)[:1]
    return plan
