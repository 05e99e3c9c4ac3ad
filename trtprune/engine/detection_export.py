"""A whole detector to ONNX: one (1, C, H, W) image in [0, 1], its boxes, scores and labels out,
with the detector's own resize, normalisation, box decoding and NMS inside the graph."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from trtprune.core.errors import UsageError
from trtprune.engine.export import DEFAULT_OPSET, export_onnx
from trtprune.models.detector_views import BOXES, LABELS, SCORES

if TYPE_CHECKING:
    from torch import nn

DETECTION_OUTPUTS = (BOXES, SCORES, LABELS)


def export_detector(
    detector: nn.Module,
    input_shape: tuple[int, ...],
    out: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``detector`` (a torchvision detector, post-processing included) for ``input_shape``."""
    if input_shape[0] != 1:
        h, w = input_shape[-2:]
        raise UsageError(
            f"a detector exports for batch 1 (each image has its own number of boxes): use --input 1x3x{h}x{w}"
        )
    detector.eval()
    return export_onnx(detector, input_shape, out, opset, metadata=metadata)  # deployed whole (its registered view)
