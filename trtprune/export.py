"""ONNX export: opset >= 17, checked by ``onnx.checker``, written atomically."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from trtprune.atomic import atomic_path
from trtprune.errors import UnsupportedModelError

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    out: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    metadata: dict[str, str] | None = None,
    dtype: str = "float32",
    example_inputs: tuple | None = None,
) -> Path:
    """Export ``model`` (eval mode) for ``input_shape`` to ``out``; the file is complete or absent.

    ``metadata`` (e.g. the preprocessing and plan) is stored in the model's ``metadata_props``.

    Uses the TorchScript-based exporter (fast, opset 17); the graph is then checked
    with ``onnx.checker`` (full check, shape inference included).
    """
    import onnx
    import torch

    out = Path(out)
    model.eval()
    if example_inputs is None:
        example_inputs = (torch.randn(*input_shape, dtype=getattr(torch, dtype)),)
        input_names, output_names = [INPUT_NAME], [OUTPUT_NAME]
    else:  # a sub-graph with several inputs and outputs
        input_names = [f"input{i}" for i in range(len(example_inputs))]
        output_names = None
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with atomic_path(out) as tmp:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    tuple(example_inputs),
                    str(tmp),
                    opset_version=opset,
                    dynamo=False,
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_axes=axes,
                    do_constant_folding=True,
                )
            if metadata:
                proto = onnx.load(str(tmp))
                for key, value in metadata.items():
                    proto.metadata_props.add(key=key, value=value)
                onnx.save(proto, str(tmp))
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise UnsupportedModelError(f"exported ONNX fails onnx.checker: {str(exc).splitlines()[0]}") from None
        except (RuntimeError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedModelError(f"cannot export {type(model).__name__} to ONNX: {first}") from None
    log.debug("exported %s (opset %d)", out, opset)
    return out


def ort_session(path: str | os.PathLike[str], threads: int | None = None):
    """An ONNX Runtime CPU session with full graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading its weights)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
