"""Per-channel squared weight norms of a group's producers or consumers.

The building block of magnitude scores (L1/L2 ranking, SP-LAMP's Eq. 2): a
scorer sees one group and returns one number per group channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trtprune.groups import ChannelGroup, ModelGroups

_WEIGHTED = ("Conv", "Linear")


def channel_sq_norms(groups: ModelGroups, group: ChannelGroup, role: str, power: float = 2.0) -> np.ndarray:
    """Sum over the group's conv/linear members of ``role`` of |w|^power over each channel's slice.

    ``role='out'``: the output filters of producers; ``role='in'``: the input slices of consumers.
    Indexed by group (root) channel.
    """
    import torch

    total = np.zeros(group.channels, dtype=np.float64)
    for m in group.members:
        if m.role != role or not m.kind.startswith(_WEIGHTED) and not m.kind.endswith(_WEIGHTED):
            continue
        module = groups.model.get_submodule(m.layer)
        w = module.weight.detach().to(torch.float64)
        transposed = getattr(module, "transposed", False)
        dim = 0 if (role == "out") != bool(transposed) else 1
        depthwise = getattr(module, "groups", 1) > 1 and role == "in"
        if depthwise:
            dim = 0 if module.groups == module.in_channels else 1
        per = w.abs().pow(power).transpose(0, dim).reshape(w.shape[dim], -1).sum(1).numpy()
        idxs = np.asarray(m.idxs)
        if dim == 1 and getattr(module, "groups", 1) > 1:
            idxs = idxs % w.shape[1]
        np.add.at(total, np.asarray(m.root_idxs), per[idxs])
    return total
