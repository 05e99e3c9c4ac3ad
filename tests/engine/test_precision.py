"""Precision carried by the ONNX: FP16 initializers, INT8 through QDQ calibrated on calib/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from trtprune.core.errors import DataError
from trtprune.engine.calib import load_calibration_set
from trtprune.engine.export import ort_session
from trtprune.engine.precision import export_with_precision
from trtprune.models import build_model

SHAPE = (1, 1, 28, 28)
CALIB = Path(__file__).parents[2] / "calib" / "fashion-mnist-sample.npy"


def test_fp16_and_int8_exports_run(tmp_path):
    model = build_model("resnet20", SHAPE)
    x = load_calibration_set(CALIB)[:1]
    fp32 = ort_session(export_with_precision(model, SHAPE, tmp_path / "m.onnx")).run(None, {"input": x})[0]

    fp16_path = export_with_precision(model, SHAPE, tmp_path / "m16.onnx", "fp16")
    graph = onnx.load(str(fp16_path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
    y16 = ort_session(fp16_path).run(None, {"input": x.astype(np.float16)})[0]
    assert np.abs(y16.astype(np.float32) - fp32).max() <= 2e-2 * np.abs(fp32).max()

    int8_path = export_with_precision(
        model, SHAPE, tmp_path / "m8.onnx", "int8", calibration=load_calibration_set(CALIB)
    )
    ops = {n.op_type for n in onnx.load(str(int8_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    y8 = ort_session(int8_path).run(None, {"input": x})[0]
    assert y8.shape == fp32.shape and np.isfinite(y8).all()
    assert not (tmp_path / "m8.fp32.onnx").exists()  # the intermediate FP32 file is not left behind


def test_bad_calibration_file(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((4, 28, 28), dtype=np.float32))
    with pytest.raises(DataError, match="NxCxHxW"):
        load_calibration_set(tmp_path / "c.npy")
