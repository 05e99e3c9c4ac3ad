"""Model registry: names map to builders with a default input shape and class count."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trtprune.registry import Registry
from trtprune.shapes import parse_shape

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """A buildable architecture.

    ``build(in_channels, num_classes, pretrained)`` returns an ``nn.Module`` in eval mode.
    ``pretrained_classes`` is the class count of bundled real weights, if any.
    """

    name: str
    family: str
    default_input: tuple[int, int, int, int]
    default_num_classes: int
    build: Callable[[int, int, bool], nn.Module]
    pretrained_classes: int | None = None
    preprocessing: dict | None = None


MODELS: Registry[ModelSpec] = Registry("model")
_LOADED = False


def _ensure_registered() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from trtprune.models import cifar_resnet, efficientnet_lite, timm_zoo, torchvision_zoo  # noqa: F401

    torchvision_zoo.register_all()
    timm_zoo.register_all()  # after torchvision: a shared name stays torchvision's


def get_model_spec(name: str) -> ModelSpec:
    _ensure_registered()
    if name not in MODELS:
        from trtprune.errors import UsageError
        from trtprune.models.timm_zoo import not_a_cnn

        why = not_a_cnn(name)
        if why is not None:
            raise UsageError(why)
    return MODELS.get(name)


def list_models() -> list[ModelSpec]:
    _ensure_registered()
    return [MODELS.get(n) for n in MODELS.names()]


def build_model(
    name: str,
    input_shape: str | tuple[int, ...] | None = None,
    num_classes: int | None = None,
    pretrained: bool = True,
) -> nn.Module:
    """Build ``name`` for ``input_shape`` (NCHW; its C sets the input channels).

    Bundled real weights are loaded when ``pretrained`` and the class count and
    input channels match them; otherwise the model is randomly initialised.
    """
    import torch

    spec = get_model_spec(name)
    shape = parse_shape(input_shape) if input_shape is not None else spec.default_input
    classes = num_classes or spec.default_num_classes
    torch.manual_seed(0)  # random init is reproducible: plans and tables refer to the same weights
    model = spec.build(shape[1], classes, pretrained)
    model.eval()
    return model
