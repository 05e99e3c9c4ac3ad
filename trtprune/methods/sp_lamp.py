"""SP-LAMP (the default): SP-LAMP scores, the group table's latency contributions, the exact group knapsack."""

from __future__ import annotations

from typing import Any

from trtprune.methods.base import METHODS, Method, StageState


@METHODS.register("sp-lamp")
class SpLamp(Method):
    name = "sp-lamp"

    def __init__(self, importance: str = "sp-lamp") -> None:
        self.importance = importance

    def decide(self, state: StageState, goal_ms: float):
        from trtprune.decision import decide

        return decide(
            state.groups, state.scores, state.latency, goal_ms, state.model_name, state.current, state.round_to
        )

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "importance": self.importance, "solver": "group knapsack"}
