"""The memory layout a model trains in: channels_last, except where oneDNN's CPU kernel breaks.

channels_last (NHWC) makes oneDNN's convolutions on the CPU about 2x faster, and costs nothing on a
GPU. One oneDNN kernel breaks on it: the backward-weights pass of a 1x1 convolution with a stride
(``jit_1x1``, on AVX2 and AVX-512) copies an NHWC source with fewer input channels than its channel
block (8 on AVX2, 16 on AVX-512) past the end of its workspace. With 2 threads it hangs, with 1 it
corrupts the heap, elsewhere it returns wrong weight gradients (uxlfoundation/oneDNN#6035; on the
AMD EPYC here, 4 input channels at stride 2 hung with 2 threads and aborted with "double free" with
1). Pruning makes exactly such convolutions: a ResNet shortcut cut to a few channels. On the CPU
those convolutions keep NCHW weights and take NCHW inputs; every other layer trains in channels_last.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

ONEDNN_CHANNEL_BLOCK = 16  # the widest block (AVX-512); AVX2's is 8


def breaks_onednn(module: nn.Module) -> bool:
    """A 1x1 convolution with a stride and fewer input channels per group than oneDNN's block."""
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.stride != (1, 1)
        and module.in_channels // module.groups < ONEDNN_CHANNEL_BLOCK
    )


@contextlib.contextmanager
def training_layout(model: nn.Module, device: torch.device) -> Iterator[list[nn.Module]]:
    """Put ``model`` in channels_last for training; on the CPU, the convolutions oneDNN breaks on in
    NCHW (weights now, inputs by a hook removed on exit). Yields those convolutions."""
    model.to(memory_format=torch.channels_last)
    kept = [m for m in model.modules() if breaks_onednn(m)] if device.type == "cpu" else []
    for conv in kept:
        conv.weight.data = conv.weight.data.clone(memory_format=torch.contiguous_format)  # 1x1: both layouts match
    handles = [conv.register_forward_pre_hook(_nchw_input) for conv in kept]
    try:
        yield kept
    finally:
        for handle in handles:
            handle.remove()


def _nchw_input(_module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])
