"""What a zoo entry is: a :class:`ModelSpec`, and the registry of them (filled by the zoo's modules)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trtprune.core.registry import Registry

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A buildable architecture.

    ``build(in_channels, num_classes, pretrained)`` returns an ``nn.Module`` in eval mode.
    ``pretrained_classes`` is the class count of bundled real weights, if any.
    ``task`` is what the model's output means: "classify" (logits) or "detect" (a torchvision detector:
    boxes, scores and labels in eval mode, its loss dict in train mode).
    ``fix_input(model, shape)``, where set, fixes a built model to the NCHW input (a detector's resize).
    """

    name: str
    family: str
    default_input: tuple[int, int, int, int]
    default_num_classes: int
    build: Callable[[int, int, bool], nn.Module]
    pretrained_classes: int | None = None
    preprocessing: dict | None = None
    task: str = "classify"
    fix_input: Callable[[nn.Module, tuple[int, int, int, int]], None] | None = None


MODELS: Registry[ModelSpec] = Registry("model")
