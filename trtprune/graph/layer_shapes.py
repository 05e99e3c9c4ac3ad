"""What each layer of a network sees and computes: one forward pass on zeros records every call's
input and output shapes (the one walker behind MAC counts, group resolutions and HALP's conv keys)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class LayerCall:
    """One call of a layer: the module, the shape of its first input and of its output."""

    module: nn.Module
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def macs(self, per_sample: bool = False) -> int:
        """Multiply-accumulates of this call (a conv or linear; 0 for anything else)."""
        from torch import nn

        m = self.module
        if isinstance(m, nn.modules.conv._ConvNd):
            per_output = m.in_channels // m.groups * math.prod(m.kernel_size)
        elif isinstance(m, nn.Linear):
            per_output = m.in_features
        else:
            return 0
        return math.prod(self.output_shape[1:] if per_sample else self.output_shape) * per_output


def layer_calls(
    model: nn.Module, input_shape: tuple[int, ...], names: set[str] | None = None
) -> dict[str, list[LayerCall]]:
    """Every call, in forward order, of each module named in ``names`` (default: every conv and
    linear) in one forward pass of ``model`` (eval mode) on zeros of ``input_shape``."""
    import torch
    from torch import nn

    calls: dict[str, list[LayerCall]] = {}
    hooks = []
    for name, module in model.named_modules():
        if names is None and not isinstance(module, nn.modules.conv._ConvNd | nn.Linear):
            continue
        if names is not None and name not in names:
            continue

        def hook(m, args, out, name=name):
            shape_in = tuple(int(d) for d in args[0].shape) if args else ()
            calls.setdefault(name, []).append(LayerCall(m, shape_in, tuple(int(d) for d in out.shape)))

        hooks.append(module.register_forward_hook(hook))
    was = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(*input_shape))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return calls


def count_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ``shape`` (every conv and linear call)."""
    return sum(call.macs() for runs in layer_calls(model, shape).values() for call in runs)
