"""Detection (torchvision's detectors): the model's own losses in train mode, COCO mAP via pycocotools,
and the network part (backbone, neck, heads) timed apart from the whole detector's post-processing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from trtprune.data.coco import detection_collate
from trtprune.engine.detection_eval import evaluate_detector, evaluate_detector_onnx
from trtprune.graph.traced_part import traced_part
from trtprune.models.detector_views import head_outputs
from trtprune.tasks.base import TASKS, Task

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset


def _batch_loss(model: nn.Module, batch: Any, device: torch.device, distill: Any) -> tuple[torch.Tensor, int]:
    """The sum of the detector's own losses (torchvision's detectors return them in train mode); with
    ``distill``, ``(1 - weight) x`` that ``+ weight x`` :func:`distill_loss` against the teacher."""
    import torch

    images, targets = batch
    images = [x.to(device, non_blocking=True) for x in images]
    targets = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets]
    if distill is None:
        return sum(model(images, targets).values()), len(images)
    student: dict[str, torch.Tensor] = {}
    detector = getattr(model, "module", model)  # under DDP, the wrapped detector
    hook = detector.head.register_forward_hook(lambda _m, _i, out: student.update(out))
    try:
        own = sum(model(images, targets).values())
    finally:
        hook.remove()
    with torch.no_grad():
        teacher = head_outputs(distill.teacher, images)
    kd = distill_loss(student, teacher, distill.temperature, softmax=_is_ssd(detector))
    return (1 - distill.weight) * own + distill.weight * kd, len(images)


def distill_loss(
    student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], temperature: float, softmax: bool
) -> torch.Tensor:
    """How far a one-stage detector's head outputs are from its teacher's, anchor by anchor (pruning
    never cuts a head's outputs, so both have the same anchors): the class scores' divergence at
    ``temperature`` (T^2 x KL of the softmaxes for SSD's softmax classifier; the binary KL of each
    class's sigmoid for RetinaNet's and FCOS's) plus the smooth-L1 distance of the box regressions
    (and FCOS's centerness logits), each a mean over anchors."""
    import torch.nn.functional as F

    t = temperature
    s_cls, t_cls = student["cls_logits"] / t, teacher["cls_logits"] / t
    if softmax:
        kl = F.kl_div(F.log_softmax(s_cls, -1), F.log_softmax(t_cls, -1), log_target=True, reduction="none").sum(-1)
    else:
        p = t_cls.sigmoid()
        kl = F.binary_cross_entropy_with_logits(s_cls, p, reduction="none") - F.binary_cross_entropy_with_logits(
            t_cls, p, reduction="none"
        )  # the binary KL of each class: cross-entropy minus the teacher's entropy
        kl = kl.sum(-1)
    loss = t * t * kl.mean()
    for key in ("bbox_regression", "bbox_ctrness"):
        if key in student:
            loss = loss + F.smooth_l1_loss(student[key], teacher[key], beta=1.0 / 9)
    return loss


def _is_ssd(detector: nn.Module) -> bool:
    from torchvision.models.detection.ssd import SSD

    return isinstance(detector, SSD)


def _distill_refusal(name: str) -> str | None:
    if "rcnn" in name:  # their heads run on proposals that differ between teacher and student
        return (
            f"--distill matches a one-stage detector's head outputs anchor by anchor; {name} is two-stage "
            "(its heads run on proposals): drop --distill"
        )
    return None


def _evaluate(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device) -> float:
    return evaluate_detector(model, dataset, batch_size=min(batch_size, 16)).map


def _evaluate_onnx(path: str | os.PathLike[str], dataset: Dataset, threads: int | None) -> dict[str, float]:
    metrics = evaluate_detector_onnx(path, dataset, threads)
    return {"map": metrics.map, "map_50": metrics.map_50}


TASKS.register(
    "detect",
    Task(
        name="detect",
        model_noun="detector",
        data_noun="detection",
        metric="map",
        metric_label="mAP@[.5:.95]",
        data_hint="pass COCO-format detection data (--data coco --data-root DIR; "
        "'python -m trtprune.data.canvas --out DIR' writes a small set)",
        batch_loss=_batch_loss,
        evaluate=_evaluate,
        evaluate_onnx=_evaluate_onnx,
        collate=detection_collate,
        distill_refusal=_distill_refusal,
        network_part=traced_part,
        drop_last=True,
    ),
)
