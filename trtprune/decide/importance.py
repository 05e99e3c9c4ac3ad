"""Channel importance, one score per channel of a group; a registry (``--importance``).

A scorer sees one group and returns one score per group channel (Torch-Pruning's
separation): it never walks the model. Registered:

- ``sp-lamp``: the paper's objective (Eq. 5/8 sum over *layers*). Every producer
  layer of the group gets its own Eq. 2 curve (its own squared output-filter norms
  times the squared norms of the channel's input slices in the group's consumers,
  its own ascending order and suffix sums, its own score-1 filter; Eq. 3 where the
  group has no consumer weights), and a channel's score is the sum over the
  producers. Layers tied to one width add their curves, so a residual group that
  ties seven convs is worth about seven single-layer groups.
- ``sp-lamp-taylor`` (beyond the paper): the same ranking inside each group, each
  group's curve scaled so that its full value equals the group's loss sensitivity,
  its first-order Taylor total (HALP's Eq. 27 on the group's batch norms, averaged
  over mini-batches; the output filters' |sum w g| for a group without norms).
- ``sp-lamp-probe`` (beyond the paper): the same ranking inside each group, each group's curve
  scaled so that the channels of its lower half (by that ranking) are worth the loss change
  measured when they are removed (:func:`loss_probe`): a measured loss change per group instead
  of the first-order Taylor total.
- ``sp-lamp-group``: one Eq. 2 curve per group from norms summed over all its
  producers and consumers (trtprune before 0.2; kept for the record): every group's
  best channel is worth 1 whatever the group controls.
- ``lamp`` (LAMP on the producers' filters alone), ``l1``, ``l2``, ``taylor-bn``
  (HALP's Eq. 27 over the group's norms) and ``random``.

Always kept: every group keeps at least its best channel (the knapsack's options are
prefix sets of one channel or more). The paper's "keep every score-1 filter" exists to
stop a layer from collapsing; the layers of a coupled group share one width, so one
surviving channel keeps all of them alive, and every producer's score-1 filter is
worth at least 1 in the sum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from trtprune.core.errors import TrtpruneError
from trtprune.core.registry import Registry
from trtprune.graph.norms import channel_sq_norms, is_weighted, producer_norms
from trtprune.surgery.apply import zero_removed
from trtprune.surgery.plan import Plan

if TYPE_CHECKING:
    from trtprune.graph.groups import ChannelGroup, ModelGroups


def sp_lamp(out_sq: np.ndarray, in_sq: np.ndarray | None = None) -> np.ndarray:
    """SP-LAMP scores in the input order.

    ``out_sq[i]``: squared Frobenius norm of channel i's output filters (summed over the
    group's producers); ``in_sq[i]``: of its input slices in the consumers (None: Eq. 3,
    a layer without consumer). The numerator is their product (Eq. 2); channels sorted
    ascending (ties by index, deterministically) are each divided by the sum of their
    own and all larger numerators. The largest scores exactly 1.
    """
    out_sq = np.asarray(out_sq, dtype=np.float64)
    num = out_sq if in_sq is None else out_sq * np.asarray(in_sq, dtype=np.float64)
    if num.ndim != 1 or (in_sq is not None and np.shape(in_sq) != out_sq.shape):
        raise ValueError("out_sq and in_sq must be 1-D arrays of the same length")
    order = np.lexsort((np.arange(len(num)), num))  # ascending, ties by index
    sorted_num = num[order]
    suffix = np.cumsum(sorted_num[::-1])[::-1]
    scores_sorted = np.divide(sorted_num, suffix, out=np.zeros_like(sorted_num), where=suffix > 0)
    if len(num):
        scores_sorted[-1] = 1.0  # the survivor (also when every numerator is zero)
    scores = np.empty_like(scores_sorted)
    scores[order] = scores_sorted
    return scores


@dataclass
class ScoreContext:
    """What scorers may need beyond the weights: a seed for random, first-order Taylor
    sensitivities for the loss-based scores (:func:`taylor_per_layer`)."""

    seed: int = 0
    taylor: dict[str, np.ndarray] | None = None  # layer -> per own output channel, averaged over batches
    probe: dict[str, float] | None = None  # group -> loss change when its lower half goes (:func:`loss_probe`)


Scorer = Callable[["ModelGroups", "ChannelGroup", ScoreContext], np.ndarray]
SCORERS: Registry[Scorer] = Registry("importance")
NEEDS_TAYLOR = frozenset({"taylor-bn", "sp-lamp-taylor"})  # scorers that read ScoreContext.taylor
NEEDS_PROBE = frozenset({"sp-lamp-probe"})  # scorers that read ScoreContext.probe
PROBE_FLOOR = 1e-4  # a group whose removal does not raise the loss is worth this much (it stays rankable)


def score_groups(
    groups: ModelGroups, name: str = "sp-lamp", context: ScoreContext | None = None
) -> dict[str, np.ndarray]:
    scorer = SCORERS.get(name)
    context = context or ScoreContext()
    if (name in NEEDS_TAYLOR and context.taylor is None) or (name in NEEDS_PROBE and context.probe is None):
        raise TrtpruneError(f"{name} importance needs training data: pass --data so a few batches can be run")
    return {g.name: scorer(groups, g, context) for g in groups.groups}


def layer_sp_lamp(groups: ModelGroups, group: ChannelGroup) -> dict[str, np.ndarray]:
    """Each producer layer's own Eq. 2 scores (Eq. 3 without consumer weights), indexed by group
    channel (0 where the layer does not carry the channel)."""

    in_sq = channel_sq_norms(groups, group, "in")
    per_layer = {}
    for layer, out_sq in producer_norms(groups, group).items():
        carried = np.flatnonzero(~np.isnan(out_sq))
        scores = np.zeros(group.channels)
        scores[carried] = sp_lamp(out_sq[carried], in_sq[carried] if in_sq.any() else None)
        per_layer[layer] = scores
    if not per_layer:  # no conv/linear producer (e.g. a bare parameter): the consumers' side alone
        per_layer["consumers"] = sp_lamp(in_sq)
    return per_layer


@SCORERS.register("sp-lamp")
def _sp_lamp(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:
    return np.sum(list(layer_sp_lamp(groups, group).values()), axis=0)


@SCORERS.register("sp-lamp-taylor")
def _sp_lamp_taylor(groups: ModelGroups, group: ChannelGroup, context: ScoreContext) -> np.ndarray:
    scores = _sp_lamp(groups, group, context)
    return scores * (group_sensitivity(groups, group, context) / scores.sum())


@SCORERS.register("sp-lamp-probe")
def _sp_lamp_probe(groups: ModelGroups, group: ChannelGroup, context: ScoreContext) -> np.ndarray:
    scores = _sp_lamp(groups, group, context)
    lower = scores[lower_half(scores)].sum()
    return scores * (max(context.probe[group.name], PROBE_FLOOR) / lower) if lower > 0 else scores


def lower_half(scores: np.ndarray) -> np.ndarray:
    """The indices of the lower-scored half of a group's channels (ties by index); at least one,
    never all."""
    n = len(scores)
    order = np.lexsort((np.arange(n), scores))
    return order[: max(1, min(n // 2, n - 1))] if n > 1 else order[:0]


@SCORERS.register("sp-lamp-group")
def _sp_lamp_group(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:

    in_sq = channel_sq_norms(groups, group, "in")
    return sp_lamp(channel_sq_norms(groups, group, "out"), in_sq if in_sq.any() else None)


@SCORERS.register("lamp")
def _lamp(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:

    return sp_lamp(channel_sq_norms(groups, group, "out"))


@SCORERS.register("l1")
def _l1(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:

    return channel_sq_norms(groups, group, "out", power=1.0)


@SCORERS.register("l2")
def _l2(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:

    return np.sqrt(channel_sq_norms(groups, group, "out"))


@SCORERS.register("random")
def _random(groups: ModelGroups, group: ChannelGroup, context: ScoreContext) -> np.ndarray:
    seed = (context.seed, sum(map(ord, group.name)))
    return np.random.default_rng(seed).random(group.channels)


def _taylor_of(group: ChannelGroup, taylor: dict[str, np.ndarray], kinds) -> np.ndarray:
    total = np.zeros(group.channels)
    for m in group.members:
        if m.role == "out" and kinds(m.kind) and m.layer in taylor:
            np.add.at(total, np.asarray(m.root_idxs), taylor[m.layer][np.asarray(m.idxs)])
    return total


def _is_bn(kind: str) -> bool:
    return kind.startswith("BatchNorm")


@SCORERS.register("taylor-bn")
def _taylor_bn(groups: ModelGroups, group: ChannelGroup, context: ScoreContext) -> np.ndarray:
    """HALP Eq. 27: |g_gamma * gamma + g_beta * beta| summed over the group's norm layers."""
    return _taylor_of(group, context.taylor, _is_bn)


def group_sensitivity(groups: ModelGroups, group: ChannelGroup, context: ScoreContext) -> float:
    """The group's first-order Taylor total: Taylor-BN over its batch norms, or, for a group
    without batch norms, |sum w g| over its producers' output filters."""

    total = _taylor_of(group, context.taylor, _is_bn)
    if not any(_is_bn(m.kind) for m in group.members):
        total = _taylor_of(group, context.taylor, is_weighted)
    return float(total.sum())


def cross_entropy(model, batch, device: str = "cpu"):
    """A classifier's mean cross-entropy on an ``(x, y)`` batch: the default loss of the scores below."""
    import torch.nn.functional as F

    x, y = batch
    return F.cross_entropy(model(x.to(device)), y.to(device))


def taylor_per_layer(model, batches, device: str = "cpu", loss=cross_entropy) -> dict[str, np.ndarray]:
    """First-order Taylor sensitivity of every output channel, averaged over ``batches``.

    Per mini-batch (HALP's practice: the absolute value is taken per batch, then averaged):
    for a batch norm |g_gamma gamma + g_beta beta| per channel (HALP Eq. 27); for a conv or
    linear |sum over the channel's output filter of w g|. The model is left in eval mode, its
    buffers (batch-norm running statistics) as they were: scoring does not change the model.
    ``loss(model, batch, device)`` is the batch's loss (a detector's: its own losses, summed).
    """
    import torch

    layers = {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm | torch.nn.modules.conv._ConvNd | torch.nn.Linear)
        and getattr(m, "weight", None) is not None
    }
    total: dict[str, torch.Tensor] = {}
    n = 0
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.train()
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss(model, batch, device).backward()
        with torch.no_grad():
            for name, m in layers.items():
                if m.weight.grad is None:
                    continue
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    t = m.weight.grad * m.weight
                    if m.bias is not None and m.bias.grad is not None:
                        t = t + m.bias.grad * m.bias
                else:
                    dim = 1 if getattr(m, "transposed", False) else 0
                    t = (m.weight.grad * m.weight).transpose(0, dim).reshape(m.weight.shape[dim], -1).sum(1)
                total[name] = total.get(name, 0) + t.abs().double().cpu()
        n += 1
    model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():  # the training-mode passes moved the running statistics: put them back
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    return {name: (t / max(n, 1)).numpy() for name, t in total.items()}


def loss_probe(model, groups: ModelGroups, batches, model_name: str, loss_of=cross_entropy) -> dict[str, float]:
    """Per group, how much the mean cross-entropy over ``batches`` rises when the lower half of the
    group's channels (by :func:`_sp_lamp`) is removed (zeroed on every coupled layer of a copy of
    ``model``, in eval mode). ``model`` is not changed."""
    import copy

    import torch

    batches = list(batches)
    device = next(model.parameters()).device

    def loss(m) -> float:
        with torch.no_grad():
            total = sum(float(loss_of(m, batch, device)) for batch in batches)
        return total / max(len(batches), 1)

    was_training = model.training
    model.eval()
    base = loss(model)
    deltas = {}
    for group in groups.groups:
        drop = set(lower_half(_sp_lamp(groups, group, ScoreContext())).tolist())
        if not drop:
            deltas[group.name] = 0.0
            continue
        plan = Plan(
            model_name,
            tuple(groups.example_input.shape),
            {group.name: [i for i in range(group.channels) if i not in drop]},
        )
        probe = copy.deepcopy(model)
        zero_removed(groups, plan, probe)
        deltas[group.name] = loss(probe) - base
    model.train(was_training)
    return deltas
