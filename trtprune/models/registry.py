"""Looking up and building the zoo's models (CIFAR ResNets and EfficientNet-Lite register when imported;
torchvision's and timm's CNNs on first use, their zoos listed lazily)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from trtprune.core.errors import UsageError
from trtprune.core.shapes import parse_shape
from trtprune.models import (  # noqa: F401 (they register)
    cifar_resnet,
    detection_zoo,
    efficientnet_lite,
    timm_zoo,
    torchvision_zoo,
)
from trtprune.models.spec import MODELS, ModelSpec
from trtprune.models.timm_zoo import not_a_cnn

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


_LOADED = False


def _ensure_registered() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    torchvision_zoo.register_all()
    detection_zoo.register_all()
    timm_zoo.register_all()  # after torchvision: a shared name stays torchvision's


def get_model_spec(name: str) -> ModelSpec:
    _ensure_registered()
    if name not in MODELS:
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
    if spec.fix_input is not None:
        spec.fix_input(model, shape)
    model.eval()
    return model
