"""Where a deployed model's latency goes: its network part (what pruning changes) and the rest.

A detector's ``model.onnx`` is the whole detector: resize and normalisation, backbone, neck and
heads, box decoding and NMS. Its network part (:attr:`trtprune.tasks.Task.network_part`: backbone,
neck and heads on the same input) is exported on its own, and the base and pruned detectors and
their network parts are timed in one interleaved harness call in the table's engine. What the
whole costs beyond its network (pre- and post-processing: the fixed cost pruning cannot reach)
is the difference of two measured medians of that call.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trtprune.core.records import Record
from trtprune.engine.bench import measure_onnx_side_by_side
from trtprune.engine.export import export_onnx
from trtprune.lut.settings import measuring_backend

if TYPE_CHECKING:
    from torch import nn

    from trtprune.lut.store import LutMeta
    from trtprune.tasks import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatencyPart(Record):
    """One model's whole latency, its network part's, and the rest (whole - network; its share of whole)."""

    whole_ms: float
    network_ms: float
    post_ms: float
    post_share: float


@dataclass(frozen=True)
class LatencyParts(Record):
    """The base and pruned models' parts, all from one interleaved call, and where it ran."""

    NESTED = {"base": LatencyPart, "pruned": LatencyPart}

    environment: dict[str, str | int | float | bool | None]
    base: LatencyPart
    pruned: LatencyPart


def measure_parts(
    meta: LutMeta, task: Task, models: dict[str, tuple[nn.Module, Path]], shape: tuple[int, ...]
) -> LatencyParts | None:
    """The parts of ``models`` ("base" and "pruned": (module, its exported whole ONNX)), all from one
    interleaved call. None where the task has no separate network part or the table's engine takes modules."""
    if task.network_part is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, (module, whole) in models.items():
            paths[name] = whole
            paths[f"{name}.network"] = export_onnx(task.network_part(module), shape, Path(tmp) / f"{name}.network.onnx")
        measured = measure_onnx_side_by_side(*measuring_backend(meta), paths)
    if measured is None:
        return None
    timings, environment = measured
    parts = {}
    for name in models:
        whole, network = timings[name].median_ms, timings[f"{name}.network"].median_ms
        post = whole - network
        parts[name] = LatencyPart(whole, network, post, post / whole)
        log.info("%s: whole %.3f ms = network %.3f ms + pre/post-processing %.3f ms", name, whole, network, post)
    return LatencyParts(dict(environment), **parts)
