"""Which convolutions and linears join which channel groups, and what each computes (MACs).

A layer that consumes group ``a`` and produces group ``b`` costs about c_a x c_b, so
cutting both saves less than the two cuts measured alone. The table records these
joins (no measurement: one forward pass counts the MACs) so a prediction can
correct the sum of single-group changes (:class:`~trtprune.lut.predict.LatencyModel`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from trtprune.groups import ModelGroups


def layer_joins(model: nn.Module, input_shape: tuple[int, ...], groups: ModelGroups) -> list[dict[str, Any]]:
    """``[{"layer", "in", "out", "macs"}]`` for every conv/linear; ``in``/``out`` are group names or None."""
    import torch
    from torch import nn

    macs: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            per_out = module.in_channels // module.groups * int(torch.tensor(module.kernel_size).prod())
        elif isinstance(module, nn.Linear):
            per_out = module.in_features
        else:
            continue

        def hook(m, args, out, name=name, per_out=per_out):
            macs[name] = int(out[0].numel()) * per_out  # one sample

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(*input_shape))
    finally:
        for h in hooks:
            h.remove()
    consumes = {layer: g.name for g in groups.groups for layer in g.consumers}
    produces = {layer: g.name for g in groups.groups for layer in g.producers}
    return [
        {"layer": layer, "in": consumes.get(layer), "out": produces.get(layer), "macs": n} for layer, n in macs.items()
    ]
