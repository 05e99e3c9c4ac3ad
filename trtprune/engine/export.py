"""ONNX export: opset >= 17, checked by ``onnx.checker``, written atomically."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtprune.backends.ort import session
from trtprune.core.atomic import atomic_path
from trtprune.core.errors import TrtpruneError, UnsupportedModelError
from trtprune.models.deployed import deployed_part

if TYPE_CHECKING:
    from torch import nn

    from trtprune.surgery.plan import Plan

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
    output_names: tuple[str, ...] | None = None,
) -> Path:
    """Export ``model`` (eval mode) for ``input_shape`` to ``out``; the file is complete or absent.

    ``metadata`` (e.g. the preprocessing and plan) is stored in the model's ``metadata_props``.
    ``output_names`` names a model's several outputs. A model with a registered deployed view (a
    detector: :mod:`trtprune.models.deployed`) is exported as that view, under its output names
    (boxes, scores, labels), post-processing included.

    Uses the TorchScript-based exporter (fast, opset 17); the graph is then checked
    with ``onnx.checker`` (full check, shape inference included).
    """
    import onnx
    import torch

    out = Path(out)
    model.eval()
    if example_inputs is None:
        model, output_names = deployed_part(model, output_names)
        example_inputs = (torch.randn(*input_shape, dtype=getattr(torch, dtype)),)
        input_names, output_names = [INPUT_NAME], list(output_names or [OUTPUT_NAME])
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
            _add_metadata(tmp, metadata or {})
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise UnsupportedModelError(f"exported ONNX fails onnx.checker: {str(exc).splitlines()[0]}") from None
        except (RuntimeError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedModelError(f"cannot export {type(model).__name__} to ONNX: {first}") from None
    log.debug("exported %s (opset %d)", out, opset)
    return out


def _add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Store ``metadata`` in the ONNX file's ``metadata_props`` (nothing to do without any)."""
    import onnx

    if not metadata:
        return
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def onnx_metadata(
    model_name: str,
    input_shape: tuple[int, ...],
    preprocessing: dict[str, Any] | None = None,
    plan: Plan | None = None,
) -> dict[str, str]:
    """The ``metadata_props`` every trtprune ONNX carries: model, input shape, preprocessing, plan."""
    meta = {"trtprune.model": model_name, "trtprune.input_shape": json.dumps(list(input_shape))}
    if preprocessing:
        meta["trtprune.preprocessing"] = json.dumps(preprocessing)
    if plan is not None:
        meta["trtprune.plan"] = json.dumps(plan.to_json())
    return meta


def ort_session(path: str | os.PathLike[str], threads: int | None = None):
    """An ONNX Runtime CPU session (options from :func:`trtprune.backends.ort.session`, their one owner)."""

    return session(path, threads)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (without loading its weights)."""
    return {p.key: p.value for p in load_proto(path, load_external_data=False).metadata_props}


def load_proto(path: str | os.PathLike[str], load_external_data: bool = True):
    """An ONNX file's protobuf; a missing or unreadable file is a one-line :class:`TrtpruneError`."""
    import onnx

    if not Path(path).is_file():
        raise TrtpruneError(f"ONNX model {path} not found")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeWarning-derived and OSErrors
        raise TrtpruneError(f"{path} is not a readable ONNX model ({type(exc).__name__}); export it again") from None
