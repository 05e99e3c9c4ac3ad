"""Pruning plans: which channels of each group survive.

A plan is JSON ``{"format": 1, "model": NAME, "input_shape": [...],
"groups": {GROUP_NAME: [kept channel indices, ascending]}}``. Groups it does
not list are kept whole. Indices refer to the unpruned base model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtprune.core.atomic import write_json
from trtprune.core.errors import PlanError
from trtprune.graph.norms import channel_sq_norms

if TYPE_CHECKING:
    from trtprune.graph.groups import ChannelGroup, ModelGroups

FORMAT = 1


@dataclass
class Plan:
    model: str
    input_shape: tuple[int, ...]
    groups: dict[str, list[int]] = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "model": self.model,
            "input_shape": list(self.input_shape),
            "groups": {k: list(map(int, v)) for k, v in self.groups.items()},
        }

    @classmethod
    def from_json(cls, obj: Any, source: str = "plan") -> Plan:
        if not isinstance(obj, dict) or not {"model", "groups"} <= set(obj):
            raise PlanError(
                f"{source} is not a trtprune plan: expected keys 'format', 'model', 'input_shape', 'groups'"
            )
        if int(obj.get("format", FORMAT)) > FORMAT:
            raise PlanError(f"{source} has plan format {obj['format']}; this trtprune reads format {FORMAT}: upgrade")
        groups = obj["groups"]
        if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
            raise PlanError(f"{source}: 'groups' must map group names to lists of kept channel indices")
        try:
            parsed = {str(k): [int(i) for i in v] for k, v in groups.items()}
        except (TypeError, ValueError):
            raise PlanError(f"{source}: channel indices must be integers") from None
        return cls(model=str(obj["model"]), input_shape=tuple(obj.get("input_shape") or ()), groups=parsed)

    def save(self, path: str | os.PathLike[str]) -> None:

        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Plan:
        path = Path(path)
        if not path.exists():
            raise PlanError(f"plan {path} not found")
        try:
            obj = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"plan {path} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
        return cls.from_json(obj, source=f"plan {path}")

    def widths(self, groups: ModelGroups) -> dict[str, int]:
        """Kept channels of every group (unlisted groups keep all)."""
        return {g.name: len(self.groups.get(g.name, range(g.channels))) for g in groups.groups}

    def validate(self, groups: ModelGroups, model_name: str) -> None:
        """Raise :class:`PlanError` naming the first group the plan does not fit."""
        if self.model != model_name:
            raise PlanError(f"plan is for model {self.model!r}, not {model_name!r}: make a plan for {model_name}")
        for name, kept in self.groups.items():
            group = groups.by_name.get(name)
            if group is None:
                raise PlanError(f"plan names unknown group {name!r} for model {model_name}; see 'trtprune groups'")
            _check_kept(group, kept)
            _check_members(group, kept)


def _check_members(group: ChannelGroup, kept: list[int]) -> None:
    """No layer of the group may lose every channel it sees (a layer sees a subset after a split or
    a slice; groups are discovered so that none does, and this keeps it so for any plan)."""
    keep = set(kept)
    for m in group.members:
        if not keep.intersection(m.root_idxs):
            raise PlanError(
                f"plan group {group.name!r} keeps none of the channels of layer {m.layer!r}: every layer keeps at least one"
            )


def _check_kept(group: ChannelGroup, kept: list[int]) -> None:
    name, channels = group.name, group.channels
    if not kept:
        raise PlanError(f"plan group {name!r} keeps no channel; every group keeps at least one")
    if any(i < 0 or i >= channels for i in kept):
        bad = next(i for i in kept if i < 0 or i >= channels)
        raise PlanError(f"plan group {name!r}: channel index {bad} is out of range 0..{channels - 1}")
    if len(set(kept)) != len(kept) or kept != sorted(kept):
        raise PlanError(f"plan group {name!r}: kept indices must be ascending and unique")
    if group.partitions > 1:
        size = channels // group.partitions
        local = [i % size for i in kept if i < size]
        expect = [p * size + i for p in range(group.partitions) for i in local]
        if kept != expect:
            raise PlanError(
                f"plan group {name!r} feeds a grouped conv with {group.partitions} groups: keep the same "
                f"positions in each block of {size} channels"
            )


def _expand_local(group: ChannelGroup, local: np.ndarray) -> list[int]:
    size = group.channels // group.partitions
    local = np.sort(local)
    return [int(p * size + i) for p in range(group.partitions) for i in local]


def ranked_blocks(group: ChannelGroup, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per local channel (one per position of a conv-group block) its score summed over the blocks,
    and the local channels in descending score order (ties by index, deterministically)."""
    per_block = np.asarray(scores).reshape(group.partitions, -1).sum(0)
    return per_block, np.lexsort((np.arange(len(per_block)), -per_block))


def top_k_plan(groups: ModelGroups, scores: dict[str, np.ndarray], keep: dict[str, int], model: str) -> Plan:
    """Keep the ``keep[g]`` highest-scoring channels of each group (per block for grouped convs)."""
    plan = Plan(model=model, input_shape=tuple(groups.example_input.shape))
    for g in groups.groups:
        if g.name not in keep or keep[g.name] >= g.channels:
            continue
        n_local = max(1, keep[g.name] // g.partitions)
        _, order = ranked_blocks(g, scores[g.name])
        plan.groups[g.name] = _expand_local(g, order[:n_local])
    return plan


def keep_ratio_plan(groups: ModelGroups, keep_ratio: float, model: str) -> Plan:
    """Keep round(keep_ratio x channels) (at least 1) of every group, highest-L2 channels first."""

    if not 0.0 < keep_ratio <= 1.0:
        raise PlanError(f"keep ratio {keep_ratio} must be in (0, 1]")
    scores = {g.name: channel_sq_norms(groups, g, "out") for g in groups.groups}
    keep = {g.name: max(g.partitions, round(keep_ratio * g.channels)) for g in groups.groups}
    return top_k_plan(groups, scores, keep, model)


def random_plan(groups: ModelGroups, model: str, rng: np.random.Generator, min_ratio: float = 0.1) -> Plan:
    """A random valid plan (for tests and table verification)."""
    plan = Plan(model=model, input_shape=tuple(groups.example_input.shape))
    for g in groups.groups:
        size = g.channels // g.partitions
        n = int(rng.integers(max(1, int(min_ratio * size)), size + 1))
        if n < size:
            plan.groups[g.name] = _expand_local(g, rng.choice(size, n, replace=False))
    return plan


def width_plan(groups: ModelGroups, widths: dict[str, int], model: str) -> Plan:
    """Keep the first ``widths[g]`` channels of each listed group (per block for grouped convs).

    Which channels survive does not change dense latency, so latency candidates use this.
    """
    plan = Plan(model=model, input_shape=tuple(groups.example_input.shape))
    for name, width in widths.items():
        g = groups.by_name[name]
        if width < g.channels:
            plan.groups[name] = _expand_local(g, np.arange(max(1, width // g.partitions)))
    return plan
