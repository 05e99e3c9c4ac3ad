"""Which part of a model carries its channels: what :func:`trtprune.graph.groups.find_groups` traces.

A classifier is traced whole. A model whose forward is not a tensor-to-tensors function (a
torchvision detector takes a list of images and ends in box decoding and NMS) registers a *view*:
a small module that holds the model's own prunable submodules under the model's own attribute
names and runs them on one image tensor. Groups found on the view name the model's layers, and
cutting the view's layers cuts the model's, since both hold the same modules.

Views are registered by the model's class name (its fully qualified name, matched along the MRO),
so registering needs no import of the library that defines the class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

_VIEWS: dict[str, Callable[[nn.Module], nn.Module]] = {}


def register_view(qualified_class: str, view: Callable[[nn.Module], nn.Module]) -> None:
    """Trace ``view(model)`` instead of ``model`` for instances of ``qualified_class`` (and subclasses)."""
    if qualified_class in _VIEWS:
        raise ValueError(f"a traced view of {qualified_class} is registered twice")
    _VIEWS[qualified_class] = view


def traced_part(model: nn.Module) -> nn.Module:
    """The module whose channels are grouped: a registered view of ``model``, else ``model`` itself."""
    for cls in type(model).__mro__:
        view = _VIEWS.get(f"{cls.__module__}.{cls.__qualname__}")
        if view is not None:
            return view(model)
    return model
