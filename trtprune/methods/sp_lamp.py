"""SP-LAMP (the default): SP-LAMP scores, the group table's latency contributions, the exact group knapsack."""

from __future__ import annotations

from typing import Any

from trtprune.methods.base import METHODS, Method, StageState

# the value the benchmark found best (benchmarks/results/compare_fmnist.md): SP-LAMP's ranking inside
# each group, each group's curve scaled to the group's first-order Taylor (loss) sensitivity
DEFAULT_IMPORTANCE = "sp-lamp-taylor"


@METHODS.register("sp-lamp")
class SpLamp(Method):
    name = "sp-lamp"

    def __init__(self, importance: str = DEFAULT_IMPORTANCE, batches: int = 10) -> None:
        from trtprune.importance import SCORERS

        SCORERS.get(importance)  # an unknown name fails here, naming the choices
        self.importance = importance
        self.taylor_batches = batches

    def cost_model(self, state: StageState):
        """What the knapsack's costs are read from: the measured table."""
        return state.latency

    def decide(self, state: StageState, goal_ms: float):
        from trtprune.decision import decide

        return decide(
            state.groups, state.scores, self.cost_model(state), goal_ms, state.model_name, state.current, state.round_to
        )

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "importance": self.importance, "solver": "group knapsack"}
