"""Every torchvision classification CNN, by its torchvision name (random init)."""

from __future__ import annotations

from torch import nn

from trtprune.models.spec import MODELS, ModelSpec

# Transformer families are not convolutional networks: not offered.
_NOT_CNN = ("vit_", "swin_", "swin3d", "maxvit")
# Models whose stem or auxiliary heads need a larger default input.
_DEFAULT_INPUT = {"inception_v3": (1, 3, 299, 299)}
IMAGENET_PREPROCESSING = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "input_size": [3, 224, 224]}


def _adapt_stem(model: nn.Module, in_channels: int) -> None:
    """Replace the first conv (3 input channels) by one with ``in_channels`` inputs."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                new = nn.Conv2d(
                    in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    child.groups if child.groups == 1 else in_channels,
                    child.bias is not None,
                )
                setattr(parent, child_name, new)
                return


def _builder(name: str):
    def build(in_channels: int, num_classes: int, _pretrained: bool) -> nn.Module:
        import torchvision

        kwargs = {}
        if name in ("inception_v3", "googlenet"):
            kwargs = {"aux_logits": False, "init_weights": True}
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
        if in_channels != 3:
            _adapt_stem(model, in_channels)
        return model

    return build


def register_all() -> None:
    import torchvision

    for name in torchvision.models.list_models(module=torchvision.models):
        if name.startswith(_NOT_CNN) or name in MODELS:
            continue
        MODELS.register(
            name,
            ModelSpec(
                name=name,
                family="torchvision",
                default_input=_DEFAULT_INPUT.get(name, (1, 3, 224, 224)),
                default_num_classes=1000,
                build=_builder(name),
                preprocessing=IMAGENET_PREPROCESSING,
            ),
        )
