"""Precision lives in the ONNX itself (TensorRT 11 is strongly typed; ORT follows the graph).

- ``fp32``: the plain export.
- ``fp16``: the model is cast to half before export, so initializers, input and output are FP16.
- ``int8``: the FP32 export is quantized statically to QDQ (QuantizeLinear/DequantizeLinear pairs,
  per-channel weights, symmetric activations) with ONNX Runtime's quantizer, calibrated on
  ``calib`` samples. Both ONNX Runtime and TensorRT run such a model in INT8.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trtprune.core.atomic import atomic_path
from trtprune.core.errors import UsageError
from trtprune.engine.export import export_onnx

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def export_with_precision(
    model: nn.Module,
    input_shape: tuple[int, ...],
    out: str | os.PathLike[str],
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
    metadata: dict[str, str] | None = None,
    example_inputs: tuple | None = None,
) -> Path:
    """Export ``model`` to ``out`` at ``precision``; the file is complete or absent.

    For ``int8`` without ``calibration`` the quantizer is calibrated on random
    normal inputs: right for latency (weights and scales do not change dense
    latency), wrong for accuracy. Accuracy-bearing INT8 exports pass real samples.
    """
    import copy

    out = Path(out)
    if precision == "fp32":
        return export_onnx(model, input_shape, out, metadata=metadata, example_inputs=example_inputs)
    if precision == "fp16":
        half_inputs = tuple(x.half() for x in example_inputs) if example_inputs is not None else None
        return export_onnx(
            copy.deepcopy(model).half(),
            input_shape,
            out,
            metadata=metadata,
            dtype="float16",
            example_inputs=half_inputs,
        )
    if precision == "int8":
        if example_inputs is not None:
            raise UsageError("int8 tables are measured in network mode; use --mode network with --precision int8")
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # the FP32 intermediate never outlives the call
            fp32 = export_onnx(model, input_shape, Path(tmp) / "fp32.onnx", metadata=metadata)
            quantize_qdq(fp32, out, input_shape, calibration)
        return out
    raise UsageError(f"unknown precision {precision!r}; use fp32, fp16 or int8")


def quantize_qdq(
    fp32_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    input_shape: tuple[int, ...],
    calibration: np.ndarray | None,
) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if calibration is None:
        calibration = np.random.default_rng(0).standard_normal((8, *input_shape[1:])).astype(np.float32)
    batch = input_shape[0]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            n = (len(calibration) // batch) * batch or batch
            data = np.resize(calibration, (n, *input_shape[1:])).astype(np.float32)
            self._it = iter([{"input": data[i : i + batch]} for i in range(0, n, batch)])

        def get_next(self):
            return next(self._it, None)

    out = Path(out)
    with atomic_path(out) as tmp:
        quantize_static(
            str(fp32_path),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
    return out
