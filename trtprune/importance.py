"""Channel importance, one score per channel of a group; a registry (``--importance``).

A scorer sees one group and returns one score per group channel (Torch-Pruning's
separation): it never walks the model. ``sp-lamp`` (default, paper Eq. 2/3),
``lamp`` (LAMP on the producers' filters alone), ``l1``, ``l2``, ``taylor-bn``
(HALP's Eq. 27: |g_gamma gamma + g_beta beta| over the group's norms, from
gradients of a few batches) and ``random``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.registry import Registry

if TYPE_CHECKING:
    from trtprune.groups import ChannelGroup, ModelGroups


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
    """What scorers may need beyond the weights: gradients for Taylor, a seed for random."""

    seed: int = 0
    grads: dict[str, Any] | None = None  # parameter name -> accumulated gradient tensor


Scorer = Callable[["ModelGroups", "ChannelGroup", ScoreContext], np.ndarray]
SCORERS: Registry[Scorer] = Registry("importance")


def score_groups(
    groups: ModelGroups, name: str = "sp-lamp", context: ScoreContext | None = None
) -> dict[str, np.ndarray]:
    scorer = SCORERS.get(name)
    context = context or ScoreContext()
    return {g.name: scorer(groups, g, context) for g in groups.groups}


@SCORERS.register("sp-lamp")
def _sp_lamp(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:
    from trtprune.norms import channel_sq_norms

    in_sq = channel_sq_norms(groups, group, "in")
    return sp_lamp(channel_sq_norms(groups, group, "out"), in_sq if in_sq.any() else None)


@SCORERS.register("lamp")
def _lamp(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:
    from trtprune.norms import channel_sq_norms

    return sp_lamp(channel_sq_norms(groups, group, "out"))


@SCORERS.register("l1")
def _l1(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:
    from trtprune.norms import channel_sq_norms

    return channel_sq_norms(groups, group, "out", power=1.0)


@SCORERS.register("l2")
def _l2(groups: ModelGroups, group: ChannelGroup, _: ScoreContext) -> np.ndarray:
    from trtprune.norms import channel_sq_norms

    return np.sqrt(channel_sq_norms(groups, group, "out"))


@SCORERS.register("random")
def _random(groups: ModelGroups, group: ChannelGroup, context: ScoreContext) -> np.ndarray:
    seed = (context.seed, sum(map(ord, group.name)))
    return np.random.default_rng(seed).random(group.channels)


@SCORERS.register("taylor-bn")
def _taylor_bn(groups: ModelGroups, group: ChannelGroup, context: ScoreContext) -> np.ndarray:
    """HALP Eq. 27: |g_gamma * gamma + g_beta * beta| summed over the group's norm layers."""
    from trtprune.errors import TrtpruneError

    if context.grads is None:
        raise TrtpruneError("taylor-bn importance needs gradients: pass --data so a few batches can be run")
    total = np.zeros(group.channels)
    for m in group.members:
        if not m.kind.startswith("BatchNorm"):
            continue
        module = groups.model.get_submodule(m.layer)
        gw, gb = context.grads.get(f"{m.layer}.weight"), context.grads.get(f"{m.layer}.bias")
        if gw is None or gb is None:
            continue
        t = (gw * module.weight.detach() + gb * module.bias.detach()).abs().double().numpy()
        np.add.at(total, np.asarray(m.root_idxs), t[np.asarray(m.idxs)])
    return total


def accumulate_grads(model, batches, device: str = "cpu") -> dict[str, Any]:
    """Sum of the loss gradients of every parameter over ``batches`` (for taylor-bn)."""
    import torch
    import torch.nn.functional as F

    model.train()
    grads: dict[str, torch.Tensor] = {}
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x.to(device)), y.to(device)).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                grads[name] = grads.get(name, 0) + p.grad.detach().cpu()
    model.eval()
    return grads
