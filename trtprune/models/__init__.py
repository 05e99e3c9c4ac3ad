"""The model zoo: a registry of builders, each a :class:`ModelSpec`."""

from __future__ import annotations

from trtprune.models.registry import build_model, get_model_spec, list_models
from trtprune.models.spec import MODELS, ModelSpec

__all__ = ["MODELS", "ModelSpec", "build_model", "get_model_spec", "list_models"]
