"""Pruning methods (``trtprune prune --method``): only the decision differs between them.

Every method shares the pipeline of :mod:`trtprune.prune` (stages, soft masks,
fine-tuning recipe, the measure-and-tighten loop, export and measurement). A
method contributes its stage schedule, its channel scores and how it turns a
latency goal into widths. Registered: ``sp-lamp`` (default), ``halp``, ``lap``,
``uniform``, ``global-l1``.
"""

from __future__ import annotations

from trtprune.methods.base import METHODS, Method, MethodContext, StageState, get_method, method_names

__all__ = ["METHODS", "Method", "MethodContext", "StageState", "get_method", "method_names"]
