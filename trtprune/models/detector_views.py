"""Views of a torchvision detector: its network part (traced for channel groups) and the whole
detector as a tensor-in, tensors-out module (exported to ONNX, post-processing included).

The network view holds the detector's own backbone (with its FPN) and heads under the detector's
attribute names, and returns the raw outputs of the heads' last convs (class logits, box
regression, centerness), so those convs feed only the network output and their output channels
join no group (:func:`trtprune.graph.groups.find_groups` never prunes what feeds the output).
"""

from __future__ import annotations

import torch
from torch import nn

from trtprune.graph.traced_part import register_view
from trtprune.models.deployed import DeployedView, register_deployed

BOXES, SCORES, LABELS = "boxes", "scores", "labels"


def feature_list(features: torch.Tensor | dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [features] if isinstance(features, torch.Tensor) else list(features.values())


def head_outputs(detector: nn.Module, images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """A one-stage detector's raw head outputs (class logits, box regression, centerness) for
    ``images``, after its own transform: what its losses and post-processing read."""
    tensors = detector.transform(images)[0].tensors
    return detector.head(feature_list(detector.backbone(tensors)))


class OneStageNetwork(nn.Module):
    """Backbone and dense head of a one-stage detector (SSD, SSDlite, RetinaNet, FCOS)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.backbone = detector.backbone
        self.head = detector.head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.head(feature_list(self.backbone(x))).values())


class TwoStageNetwork(nn.Module):
    """Backbone, RPN head and RoI heads of a two-stage detector (Faster/Mask/Keypoint R-CNN).

    The RoI heads run on two fixed boxes per image, so every layer that reads the features is traced.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.backbone = detector.backbone
        self.rpn = detector.rpn
        self.roi_heads = detector.roi_heads

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.backbone(x)
        features = features if isinstance(features, dict) else {"0": features}
        objectness, deltas = self.rpn.head(list(features.values()))
        h, w = x.shape[-2:]
        box = torch.tensor([[0.0, 0.0, w / 2, h / 2], [w / 4, h / 4, w, h]], dtype=x.dtype)
        boxes, sizes = [box] * x.shape[0], [(h, w)] * x.shape[0]
        heads = self.roi_heads
        outputs = [
            *objectness,
            *deltas,
            *heads.box_predictor(heads.box_head(heads.box_roi_pool(features, boxes, sizes))),
        ]
        for branch in ("mask", "keypoint"):
            pool = getattr(heads, f"{branch}_roi_pool", None)
            if pool is not None:
                head, predictor = getattr(heads, f"{branch}_head"), getattr(heads, f"{branch}_predictor")
                outputs.append(predictor(head(pool(features, boxes, sizes))))
        return tuple(outputs)


class DeployedDetector(nn.Module):
    """The whole detector on a (1, C, H, W) tensor in [0, 1]: its boxes (x1 y1 x2 y2, input pixels),
    scores and labels after its own post-processing, as the exported ONNX returns them."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.detector(list(x.unbind(0)))[0]
        return out[BOXES], out[SCORES], out[LABELS]


_DETECTION = "torchvision.models.detection"
for _cls in (f"{_DETECTION}.ssd.SSD", f"{_DETECTION}.retinanet.RetinaNet", f"{_DETECTION}.fcos.FCOS"):
    register_view(_cls, OneStageNetwork)
register_view(f"{_DETECTION}.generalized_rcnn.GeneralizedRCNN", TwoStageNetwork)
for _cls in ("ssd.SSD", "retinanet.RetinaNet", "fcos.FCOS", "generalized_rcnn.GeneralizedRCNN"):
    register_deployed(f"{_DETECTION}.{_cls}", DeployedView(DeployedDetector, (BOXES, SCORES, LABELS)))
