"""timm's convolutional networks, by their timm name (random init: no hub download, ever).

Weights come from the user's ``--checkpoint``; timm is asked for architectures only
(``pretrained=False``). A timm name that torchvision also uses (``resnet50``) is registered as
``timm_<name>``; the plain name stays torchvision's. timm is imported lazily.
"""

from __future__ import annotations

import logging

from torch import nn

from trtprune.models.spec import MODELS, ModelSpec

log = logging.getLogger(__name__)

# timm's model modules whose architectures are convolutional networks (transformers, hybrids with
# attention stages and MLP mixers are not offered).
CNN_MODULES = (
    "byobnet",
    "convmixer",
    "convnext",
    "cspnet",
    "cspnext",
    "densenet",
    "dla",
    "dpn",
    "efficientnet",
    "fasternet",
    "ghostnet",
    "hardcorenas",
    "hgnet",
    "hrnet",
    "inception_next",
    "inception_resnet_v2",
    "inception_v3",
    "inception_v4",
    "lcnetv2",
    "mobilenetv3",
    "nasnet",
    "nfnet",
    "pnasnet",
    "rdnet",
    "regnet",
    "repghost",
    "repvit",
    "res2net",
    "resnest",
    "resnet",
    "resnetv2",
    "rexnet",
    "selecsls",
    "senet",
    "sknet",
    "starnet",
    "tresnet",
    "vgg",
    "vovnet",
    "xception",
    "xception_aligned",
)
_NOT_CNN_NAMES = ("hybrid",)  # mobilenetv4_hybrid_*: attention blocks inside a CNN module
PREFIX = "timm_"


def _builder(timm_name: str):
    def build(in_channels: int, num_classes: int, _pretrained: bool) -> nn.Module:
        import timm

        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_channels)

    return build


def _spec(name: str, timm_name: str) -> ModelSpec:
    import timm

    cfg = timm.models.get_pretrained_cfg(timm_name)
    size = tuple(cfg.input_size) if cfg is not None and cfg.input_size else (3, 224, 224)
    pre = None
    if cfg is not None and cfg.mean and cfg.std:
        pre = {"mean": list(cfg.mean), "std": list(cfg.std), "input_size": list(size)}
    return ModelSpec(
        name=name,
        family="timm",
        default_input=(1, *size),
        default_num_classes=1000,
        build=_builder(timm_name),
        preprocessing=pre,
    )


def cnn_names() -> list[str]:
    """timm's CNN architectures (timm names)."""
    import timm

    names = set()
    for module in CNN_MODULES:
        names.update(n for n in timm.list_models(module=module) if not any(k in n for k in _NOT_CNN_NAMES))
    return sorted(names)


def register_all() -> None:
    try:
        import timm  # noqa: F401
    except ImportError:
        log.info("timm is not installed: its models are not offered (pip install timm)")
        return
    for timm_name in cnn_names():
        name = timm_name if timm_name not in MODELS else PREFIX + timm_name
        if name not in MODELS:
            MODELS.register(name, _spec(name, timm_name))


def not_a_cnn(name: str) -> str | None:
    """For a timm architecture trtprune does not offer: what it is (None for names timm lacks)."""
    try:
        import timm
        from timm.models import get_arch_name
    except ImportError:
        return None
    arch = get_arch_name(name.removeprefix(PREFIX))
    if not timm.is_model(arch):
        return None
    module = next((m for m in _modules_of(arch)), "timm")
    return (
        f"{name} is a timm {module} model, not a convolutional network: trtprune prunes the channels of CNNs "
        "(see 'trtprune models --family timm')"
    )


def _modules_of(arch: str) -> list[str]:
    import timm

    return [m for m in timm.list_modules() if arch in timm.list_models(module=m)]
