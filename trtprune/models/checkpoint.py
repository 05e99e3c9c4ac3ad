"""Checkpoints: a state_dict plus the metadata needed to rebuild and feed the model.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``weights_only=True``; modules are never pickled. Layout (format 1)::

    {"format": 1, "model": "resnet20", "input_shape": [1, 1, 28, 28], "num_classes": 10,
     "preprocessing": {...} | None, "plan": {...} | None, "metrics": {...} | None,
     "state_dict": {...}}

A bare ``state_dict`` (a dict of tensors) is accepted too, with every other field None.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trtprune.core.atomic import atomic_path
from trtprune.core.errors import CheckpointError, TrtpruneError

FORMAT = 1
METADATA_KEYS = ("model", "input_shape", "num_classes", "preprocessing", "plan", "metrics")

PathLike = str | os.PathLike[str]


def _plain(model: nn.Module) -> nn.Module:
    """The module inside a DataParallel/DistributedDataParallel wrapper, so keys carry no 'module.' prefix."""
    return model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else model


def _jsonable(obj: Any) -> Any:
    """Dataclasses of this package (Preprocessing, Plan) are stored as their JSON form."""
    return obj.to_json() if hasattr(obj, "to_json") else obj


def save_checkpoint(
    path: PathLike,
    model: nn.Module,
    *,
    model_name: str,
    input_shape: tuple[int, int, int, int],
    num_classes: int,
    preprocessing: dict[str, Any] | None,
    plan: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s weights and metadata to ``path`` atomically (complete or absent)."""
    state = {k: v.detach().cpu() for k, v in _plain(model).state_dict().items()}
    obj = {
        "format": FORMAT,
        "model": model_name,
        "input_shape": [int(d) for d in input_shape],
        "num_classes": int(num_classes),
        "preprocessing": _jsonable(preprocessing),
        "plan": _jsonable(plan),
        "metrics": metrics,
        "state_dict": state,
    }
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _corrupt(path: PathLike, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is corrupt or not a trtprune/PyTorch checkpoint ({why})")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _normalise(obj: Any, path: PathLike) -> dict[str, Any]:
    if _is_state_dict(obj) and "state_dict" not in obj:
        return {"format": FORMAT, **dict.fromkeys(METADATA_KEYS), "state_dict": obj}
    if not isinstance(obj, dict) or "format" not in obj or "state_dict" not in obj:
        raise _corrupt(path, "no 'format' and 'state_dict' entries")
    if not isinstance(obj["format"], int) or obj["format"] > FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {obj['format']!r}, not one this trtprune reads ({FORMAT}); upgrade trtprune"
        )
    if not _is_state_dict(obj["state_dict"]):
        raise _corrupt(path, "its 'state_dict' is not a dict of tensors")
    return {**dict.fromkeys(METADATA_KEYS), **obj}


def load_state(path: PathLike, unreadable: str) -> dict[str, Any]:
    """A saved training state (tensors and plain data, read with ``weights_only``) onto the CPU; a
    damaged file is one :class:`TrtpruneError`, ``unreadable`` formatted with ``why`` (the error's type)."""

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a damaged file
        raise TrtpruneError(unreadable.format(why=type(exc).__name__)) from None


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Read a checkpoint (or a bare state_dict) onto the CPU; raises :class:`CheckpointError` on any problem."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {path} not found; train one with 'trtprune train MODEL --out {path}'")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for a bad file
        raise _corrupt(path, type(exc).__name__) from None
    return _normalise(obj, path)


def _first_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    for key, value in expected.items():
        if key not in found:
            return f"{key} is missing from the checkpoint"
        if tuple(found[key].shape) != tuple(value.shape):
            return f"{key} has shape {list(found[key].shape)} in the checkpoint but {list(value.shape)} in the model"
    extra = next((k for k in found if k not in expected), None)
    return None if extra is None else f"{extra} is in the checkpoint but not in the model"


def _describe(ckpt: dict[str, Any], path: PathLike) -> str:
    if not ckpt.get("model"):
        return f"checkpoint {path}"
    shape = "x".join(str(d) for d in ckpt.get("input_shape") or []) or "?"
    pruned = ", pruned: apply its plan before loading" if ckpt.get("plan") else ""
    classes = ckpt.get("num_classes")
    return f"checkpoint {path} was made for model {ckpt['model']} (input {shape}, {classes} classes{pruned}) and"


def load_weights(model: nn.Module, ckpt: dict[str, Any], path: PathLike) -> None:
    """Load ``ckpt['state_dict']`` into ``model`` strictly; a mismatch raises a one-line :class:`CheckpointError`."""
    model = _plain(model)
    state = ckpt["state_dict"]
    mismatch = _first_mismatch(model.state_dict(), state)
    if mismatch is None:
        try:
            model.load_state_dict(state, strict=True)
            return
        except RuntimeError as exc:
            mismatch = str(exc).strip().splitlines()[-1].strip()
    raise CheckpointError(f"{_describe(ckpt, path)} does not fit this model: first mismatching key {mismatch}")
