"""What a prune report records about the method that decided: a typed, versioned record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtprune.core.records import Record


@dataclass(frozen=True)
class MethodDescription(Record):
    """The method's name, how it scores and prices channels, how it searches, and what its search
    spent. A method fills the fields that apply to it; the others stay None and are not written, so
    report.json keeps the flat object older reports hold."""

    method: str
    importance: str | None = None  # how channels are scored
    latency: str | None = None  # how a choice is priced
    solver: str | None = None
    search: str | None = None
    pruner: str | None = None
    schedule: str | None = None
    empty_layers: str | None = None
    layers_measured: int | None = None  # HALP: convolutions newly measured for its own table
    table_base_ms: float | None = None  # HALP: its table's base latency
    episodes: int | None = None  # LAP: DDPG episodes
    search_s: float | None = None
    first_rewards: tuple[float, ...] | None = None
    best_reward: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_json().items() if v is not None}
