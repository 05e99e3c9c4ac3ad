"""Every torchvision detector, by its torchvision name (random init, fixed input size).

All are built the same way: ``weights=None, weights_backbone=None`` (nothing is downloaded),
``num_classes`` from the data (background included: COCO category ids are the labels), and the
detector's own resize fixed to the ``--input`` size, so an image of that size passes unchanged
and the exported graph has one fixed shape.
"""

from __future__ import annotations

from torch import nn

from trtprune.core.errors import UsageError
from trtprune.models import detector_views  # noqa: F401 (registers the views that groups trace)
from trtprune.models.spec import MODELS, ModelSpec

# The input each detector was designed for; the others default to 512 (torchvision's R-CNNs resize to 800+).
_DEFAULT_SIDE = {
    "ssdlite320_mobilenet_v3_large": 320,
    "ssd300_vgg16": 300,
    "fasterrcnn_mobilenet_v3_large_320_fpn": 320,
}
# Post-processing at a fixed load: every score passes the threshold and the detector's own top-k
# keeps exactly this many candidates (per class for SSD and SSDlite, per feature level for RetinaNet
# and FCOS; fewer where the detector's default is lower) for box decoding and NMS. The deployed
# detector's post-processing then costs the same whatever its weights and image: the latency a table
# and the matching loop measure with the base's weights is the latency of the fine-tuned detector
# (with torchvision's thresholds, an untrained or freshly cut detector sends far more boxes to NMS
# than a trained one). The mAP is measured with the same settings. Two-stage detectors keep theirs
# (their RPN already keeps a fixed number of proposals).
FIXED_LOAD_TOPK = 20
COCO_CLASSES = 91  # torchvision's COCO detectors: 90 category ids + the background
DETECTION_PREPROCESSING = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "input_size": [3, 512, 512]}


def fix_input(model: nn.Module, shape: tuple[int, int, int, int]) -> None:
    """Make the detector's transform resize every image to exactly H x W (a no-op at that size)."""
    _, channels, h, w = shape
    if channels != 3:
        raise UsageError(f"torchvision's detectors take RGB images: use --input 1x3x{h}x{w}, not {channels} channels")
    transform = model.transform
    transform.min_size, transform.max_size = (min(h, w),), max(h, w)
    transform.fixed_size = (w, h)  # torchvision's order: width, height


def fix_post_load(model: nn.Module) -> None:
    """Post-processing at a fixed load (:data:`FIXED_LOAD_TOPK`) for a one-stage detector."""
    if hasattr(model, "score_thresh") and hasattr(model, "topk_candidates"):
        model.score_thresh = -1.0  # softmax, sigmoid and FCOS's scores are all above it
        model.topk_candidates = min(model.topk_candidates, FIXED_LOAD_TOPK)


def _input_fixer(name: str, side: int):
    def fix(model: nn.Module, shape: tuple[int, int, int, int]) -> None:
        fix_input(model, shape)
        fix_post_load(model)
        check_input_size(model, shape, name, side)

    return fix


def check_input_size(model: nn.Module, shape: tuple[int, int, int, int], name: str, side: int) -> None:
    """One detection on a blank image: an input too small for the detector's layers or anchors (its
    feature maps shrink below a kernel, its anchors do not fit) is a one-line usage error."""
    import torch

    h, w = shape[-2:]
    try:
        with torch.no_grad():
            model.eval()([torch.zeros(shape[1:])])
    except (RuntimeError, ValueError, IndexError) as exc:
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{name} cannot run at {h}x{w}: the input is too small for its layers and anchors ({why}); "
            f"use a larger --input, e.g. 1x3x{side}x{side}"
        ) from None


def _builder(name: str):
    def build(in_channels: int, num_classes: int, _pretrained: bool) -> nn.Module:
        import torchvision

        if in_channels != 3:
            raise UsageError(f"{name} takes RGB images: use an input with 3 channels (1x3xHxW)")
        return torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=num_classes)

    return build


def register_all() -> None:
    import torchvision

    for name in torchvision.models.list_models(module=torchvision.models.detection):
        if name in MODELS:
            continue
        side = _DEFAULT_SIDE.get(name, 512)
        MODELS.register(
            name,
            ModelSpec(
                name=name,
                family="torchvision-detection",
                default_input=(1, 3, side, side),
                default_num_classes=COCO_CLASSES,
                build=_builder(name),
                preprocessing={**DETECTION_PREPROCESSING, "input_size": [3, side, side]},
                task="detect",
                fix_input=_input_fixer(name, side),
            ),
        )
