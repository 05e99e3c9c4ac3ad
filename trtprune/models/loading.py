"""Rebuild a (possibly pruned) model from its name, checkpoint and plan.

A saved pruned model is the base model's name + its plan + a state_dict: the
base architecture is built, the plan applied physically, then the weights load.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trtprune.core.errors import PlanError, UsageError
from trtprune.core.shapes import parse_shape
from trtprune.graph.groups import find_groups
from trtprune.models import build_model, get_model_spec
from trtprune.models.checkpoint import load_checkpoint, load_weights
from trtprune.models.weights import load_named_weights
from trtprune.surgery.apply import apply_plan
from trtprune.surgery.plan import Plan, keep_ratio_plan

if TYPE_CHECKING:
    from torch import nn

    from trtprune.surgery.plan import Plan

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: nn.Module
    name: str
    input_shape: tuple[int, int, int, int]
    num_classes: int
    plan: Plan | None
    preprocessing: dict[str, Any] | None


def load_model(
    name: str | None,
    input_shape: str | tuple[int, ...] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    pretrained: bool = True,
    weights: str | None = None,
) -> LoadedModel:
    """Build ``name`` (or the checkpoint's model) and load the checkpoint, re-applying its plan;
    ``weights``: torchvision's named weights instead of a checkpoint."""

    if weights and checkpoint:
        raise UsageError("give --weights or --checkpoint, not both")
    ckpt = load_checkpoint(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.get("model") and name and ckpt["model"] != name:
        raise UsageError(
            f"checkpoint {checkpoint} holds model {ckpt['model']!r}, not {name!r}: pass the matching MODEL"
        )
    name = name or (ckpt or {}).get("model")
    if not name:
        raise UsageError("no model given: pass MODEL (see 'trtprune models') or a trtprune --checkpoint")
    spec = get_model_spec(name)
    if input_shape is None and ckpt is not None and ckpt.get("input_shape"):
        input_shape = tuple(ckpt["input_shape"])
    shape = parse_shape(input_shape) if input_shape is not None else spec.default_input
    classes = num_classes or (ckpt or {}).get("num_classes") or spec.default_num_classes
    model = build_model(name, shape, classes, pretrained=pretrained and ckpt is None and not weights)
    if weights:
        load_named_weights(model, name, weights)
    plan = None
    if ckpt is not None and ckpt.get("plan"):
        plan = Plan.from_json(ckpt["plan"], source=f"checkpoint {checkpoint}")
        prune_model(model, name, shape, plan)
    if ckpt is not None:
        load_weights(model, ckpt, checkpoint)
    pre = (ckpt or {}).get("preprocessing") or spec.preprocessing
    return LoadedModel(model, name, shape, int(classes), plan, pre)


def prune_model(model: nn.Module, name: str, shape: tuple[int, ...], plan: Plan) -> nn.Module:
    """Apply ``plan`` physically to the unpruned ``model``."""

    return apply_plan(find_groups(model, shape), plan, name)


def prune_loaded(
    loaded: LoadedModel, plan_path: str | os.PathLike[str] | None = None, keep_ratio: float | None = None
) -> LoadedModel:
    """Prune a freshly loaded model by a plan file or a keep ratio (highest-L2 channels first)."""

    if plan_path is None and keep_ratio is None:
        return loaded
    if plan_path is not None and keep_ratio is not None:
        raise UsageError("pass either --plan or --keep-ratio, not both")
    if loaded.plan is not None:
        raise PlanError("the checkpoint is already pruned; plans index the base model: start from the base checkpoint")
    groups = find_groups(loaded.model, loaded.input_shape)
    plan = Plan.load(plan_path) if plan_path is not None else keep_ratio_plan(groups, keep_ratio, loaded.name)
    plan.input_shape = tuple(loaded.input_shape)
    apply_plan(groups, plan, loaded.name)
    loaded.plan = plan
    return loaded
