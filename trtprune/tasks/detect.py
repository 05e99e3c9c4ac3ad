"""Detection (torchvision's detectors): the model's own losses in train mode, COCO mAP via pycocotools,
and the network part (backbone, neck, heads) timed apart from the whole detector's post-processing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from trtprune.data.coco import detection_collate
from trtprune.engine.detection_eval import evaluate_detector, evaluate_detector_onnx
from trtprune.graph.traced_part import traced_part
from trtprune.tasks.base import TASKS, Task

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset


def _batch_loss(model: nn.Module, batch: Any, device: torch.device, distill: Any) -> tuple[torch.Tensor, int]:
    """The sum of the detector's own losses (torchvision's detectors return them in train mode)."""
    import torch

    images, targets = batch
    images = [x.to(device, non_blocking=True) for x in images]
    targets = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets]
    losses = model(images, targets)
    return sum(losses.values()), len(images)


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
        distill_refusal="--distill matches a teacher's class logits; a detector fine-tunes with its own losses: "
        "drop --distill",
        network_part=traced_part,
        drop_last=True,
    ),
)
