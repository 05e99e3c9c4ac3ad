"""What of a model is deployed: the module exported to ONNX and timed, and the names of its outputs.

A classifier is deployed as it is (one output, its logits). A model whose forward is not a
tensor-to-tensors function (a torchvision detector takes a list of images and returns a list of
dicts) registers a *deployed view*: a module running the whole model, post-processing included,
on one image tensor and returning plain tensors. :func:`trtprune.engine.export.export_onnx`
exports the deployed part, so every path that exports a model (the latency table, the matching
loop's candidates, ``trtprune export``, the prune run's ``model.onnx``) deploys the same graph.

Views are registered by the model's fully qualified class name, matched along the MRO, like
:mod:`trtprune.graph.traced_part`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class DeployedView:
    """``wrap(model)`` is the module deployed for a model of the registered class; ``outputs`` name its outputs."""

    wrap: Callable[[nn.Module], nn.Module]
    outputs: tuple[str, ...]


_VIEWS: dict[str, DeployedView] = {}


def register_deployed(qualified_class: str, view: DeployedView) -> None:
    """Deploy ``view.wrap(model)`` instead of ``model`` for instances of ``qualified_class`` (and subclasses)."""
    if qualified_class in _VIEWS:
        raise ValueError(f"a deployed view of {qualified_class} is registered twice")
    _VIEWS[qualified_class] = view


def deployed_view(model: nn.Module) -> DeployedView | None:
    """The registered deployed view of ``model``'s class, or None (the model is deployed as it is)."""
    for cls in type(model).__mro__:
        view = _VIEWS.get(f"{cls.__module__}.{cls.__qualname__}")
        if view is not None:
            return view
    return None


def deployed_part(
    model: nn.Module, output_names: tuple[str, ...] | None = None
) -> tuple[nn.Module, tuple[str, ...] | None]:
    """(the module to export, its output names): a registered view of ``model``, else ``model`` itself."""
    view = deployed_view(model)
    if view is None:
        return model, output_names
    return view.wrap(model), view.outputs
