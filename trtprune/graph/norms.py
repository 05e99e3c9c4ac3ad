"""Per-channel weight norms of a group's producers or consumers.

The building block of magnitude scores (L1/L2 ranking, SP-LAMP's Eq. 2): a
scorer sees one group and returns one number per group channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trtprune.graph.groups import ChannelGroup, Member, ModelGroups

_WEIGHTED = ("Conv", "Linear")


def is_weighted(kind: str) -> bool:
    """A conv or linear layer (the layers SP-LAMP scores), as opposed to norms and activations."""
    return kind.startswith(_WEIGHTED) or kind.endswith(_WEIGHTED)


def member_norms(groups: ModelGroups, member: Member, power: float = 2.0) -> np.ndarray:
    """|w|^power summed over each of ``member``'s channel slices, in the order of ``member.root_idxs``.

    Producers (role 'out'): the output filters; consumers (role 'in'): the input slices.
    """
    import torch

    module = groups.model.get_submodule(member.layer)
    w = module.weight.detach().to(torch.float64)
    transposed = getattr(module, "transposed", False)
    dim = 0 if (member.role == "out") != bool(transposed) else 1
    if getattr(module, "groups", 1) > 1 and member.role == "in":
        dim = 0 if module.groups == module.in_channels else 1
    per = w.abs().pow(power).transpose(0, dim).reshape(w.shape[dim], -1).sum(1).numpy()
    idxs = np.asarray(member.idxs)
    if dim == 1 and getattr(module, "groups", 1) > 1:
        idxs = idxs % w.shape[1]
    return per[idxs]


def producer_norms(groups: ModelGroups, group: ChannelGroup, power: float = 2.0) -> dict[str, np.ndarray]:
    """Per producer conv/linear of ``group``: its output-filter norms indexed by group channel
    (NaN where the layer does not carry that channel, e.g. one side of a concat)."""
    out: dict[str, np.ndarray] = {}
    for m in group.members:
        if m.role != "out" or not is_weighted(m.kind):
            continue
        per = out.setdefault(m.layer, np.full(group.channels, np.nan))
        per[np.asarray(m.root_idxs)] = member_norms(groups, m, power)
    return out


def channel_sq_norms(groups: ModelGroups, group: ChannelGroup, role: str, power: float = 2.0) -> np.ndarray:
    """Sum over the group's conv/linear members of ``role`` of |w|^power over each channel's slice.

    ``role='out'``: the output filters of producers; ``role='in'``: the input slices of consumers.
    Indexed by group (root) channel.
    """
    total = np.zeros(group.channels, dtype=np.float64)
    for m in group.members:
        if m.role == role and is_weighted(m.kind):
            np.add.at(total, np.asarray(m.root_idxs), member_norms(groups, m, power))
    return total
