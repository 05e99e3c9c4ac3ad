"""COCO mAP of a detector: a PyTorch module or an exported ONNX in ONNX Runtime, over a COCO dataset.

A *predictor* maps a (N, C, H, W) batch in [0, 1] to one ``{"boxes", "scores", "labels"}`` per image
(boxes x1 y1 x2 y2 in input pixels). Its boxes are scaled back to each file's own size and scored
by pycocotools' ``COCOeval`` against the annotation json itself, so the numbers are COCO's:
mAP@[.5:.95] (``map``) and mAP@.5 (``map_50``), over all areas, 100 detections per image.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.core.errors import DataError
from trtprune.data.coco import CocoDetection
from trtprune.engine.export import ort_session
from trtprune.models.detector_views import BOXES, LABELS, SCORES

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset

Predictor = Callable[["torch.Tensor"], list[dict[str, Any]]]
FORMAT = 1


@dataclass(frozen=True)
class DetectionMetrics:
    """COCO box mAP@[.5:.95] and mAP@.5 in [0, 1] over ``images`` images holding ``detections`` boxes."""

    map: float
    map_50: float
    images: int
    detections: int
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def coco_results(image_id: int, prediction: dict[str, Any], scale: tuple[float, float]) -> list[dict[str, Any]]:
    """One image's prediction as COCO result rows (x, y, w, h in the file's pixels); ``scale`` = (sx, sy)
    from file to input pixels."""
    boxes = np.asarray(prediction[BOXES], dtype=np.float64).reshape(-1, 4) / np.array([*scale, *scale])
    scores = np.asarray(prediction[SCORES], dtype=np.float64).reshape(-1)
    labels = np.asarray(prediction[LABELS]).reshape(-1)
    return [
        {
            "image_id": int(image_id),
            "category_id": int(c),
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            "score": float(s),
        }
        for b, s, c in zip(boxes, scores, labels, strict=True)
    ]


def coco_map(coco_gt: Any, results: list[dict[str, Any]], image_ids: Iterable[int]) -> DetectionMetrics:
    """COCOeval's box mAP@[.5:.95] and mAP@.5 of ``results`` on ``image_ids`` (0 where nothing is detected)."""
    from pycocotools.cocoeval import COCOeval

    ids = sorted(int(i) for i in image_ids)
    if not results:
        return DetectionMetrics(0.0, 0.0, len(ids), 0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports by print
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        evaluator.params.imgIds = ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats  # -1 where the images hold no ground truth at all
    return DetectionMetrics(max(float(stats[0]), 0.0), max(float(stats[1]), 0.0), len(ids), len(results))


def _coco_of(dataset: Dataset) -> tuple[CocoDetection, list[int]]:
    """The COCO split under ``dataset`` (possibly a Subset of it) and the indices evaluated."""
    indices = list(range(len(dataset)))
    while hasattr(dataset, "indices") and hasattr(dataset, "dataset"):  # torch Subset (get_dataset's limit)
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    if not isinstance(dataset, CocoDetection):
        raise DataError(f"mAP needs COCO-format data (--data coco), not {type(dataset).__name__}")
    return dataset, indices


def evaluate_detections(predict: Predictor, dataset: Dataset, batch_size: int = 8) -> DetectionMetrics:
    """Run ``predict`` over ``dataset`` (COCO-format) and score it with COCOeval."""
    import torch

    coco, indices = _coco_of(dataset)
    results: list[dict[str, Any]] = []
    for start in range(0, len(indices), batch_size):
        items = [coco[i] for i in indices[start : start + batch_size]]
        predictions = predict(torch.stack([x for x, _ in items]))
        for (x, target), prediction in zip(items, predictions, strict=True):
            orig_h, orig_w = target["orig_size"]
            scale = (x.shape[-1] / orig_w, x.shape[-2] / orig_h)
            results += coco_results(target["image_id"], prediction, scale)
    return coco_map(coco.coco, results, (coco.ids[i] for i in indices))


def torch_predictor(model: nn.Module) -> Predictor:
    """A torchvision detector in eval mode as a predictor."""
    import torch

    def predict(images: torch.Tensor) -> list[dict[str, Any]]:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            out = model(list(images.to(device).unbind(0)))
        return [{k: out_i[k].cpu().numpy() for k in (BOXES, SCORES, LABELS)} for out_i in out]

    return predict


def onnx_predictor(path: str | os.PathLike[str], threads: int | None = None) -> Predictor:
    """An exported detector (:func:`trtprune.engine.detection_export.export_detector`) in ONNX Runtime,
    one image per run (its input has batch 1)."""
    sess = ort_session(path, threads)
    input_name = sess.get_inputs()[0].name

    def predict(images: torch.Tensor) -> list[dict[str, Any]]:
        out = []
        for x in images.numpy().astype(np.float32):
            boxes, scores, labels = sess.run([BOXES, SCORES, LABELS], {input_name: x[None]})
            out.append({BOXES: boxes, SCORES: scores, LABELS: labels})
        return out

    return predict


def evaluate_detector(model: nn.Module, dataset: Dataset, batch_size: int = 8) -> DetectionMetrics:
    """COCO mAP of a PyTorch detector."""
    return evaluate_detections(torch_predictor(model), dataset, batch_size)


def evaluate_detector_onnx(
    path: str | os.PathLike[str], dataset: Dataset, threads: int | None = None
) -> DetectionMetrics:
    """COCO mAP of an exported detector in ONNX Runtime (CPU)."""
    return evaluate_detections(onnx_predictor(path, threads), dataset)
