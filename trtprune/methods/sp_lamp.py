"""SP-LAMP (the default): SP-LAMP scores, the group table's latency contributions, the exact group knapsack."""

from __future__ import annotations

from trtprune.core.registry import Registry
from trtprune.decide.decision import decide
from trtprune.decide.importance import SCORERS
from trtprune.methods.base import METHODS, Method, StageState
from trtprune.methods.description import MethodDescription

# the value the benchmark found best (benchmarks/results/compare_fmnist.md): SP-LAMP's ranking inside
# each group, each group's curve scaled to the group's first-order Taylor (loss) sensitivity
DEFAULT_IMPORTANCE = "sp-lamp-taylor"

# how the knapsack reads the cost model: "joined" re-solves it around its last solution with the
# full prediction (groups cut together save less than their single changes add up to),
# "separable" sums each group's own change (the paper's Eq. 7 as one knapsack)
SOLVERS: Registry[str] = Registry("solver")
SOLVERS.register("joined", "group knapsack, relinearised on the joined-layer correction")
SOLVERS.register("separable", "group knapsack on the separable costs")
DEFAULT_SOLVER = "joined"


@METHODS.register("sp-lamp")
class SpLamp(Method):
    name = "sp-lamp"

    def __init__(self, importance: str = DEFAULT_IMPORTANCE, batches: int = 10, solver: str = DEFAULT_SOLVER) -> None:

        SCORERS.get(importance)  # an unknown name fails here, naming the choices
        SOLVERS.get(solver)
        self.importance = importance
        self.taylor_batches = batches
        self.solver = solver

    def cost_model(self, state: StageState):
        """What the knapsack's costs are read from: the measured table."""
        return state.latency

    def decide(self, state: StageState, goal_ms: float):

        cost = self.cost_model(state)
        joined = cost if self.solver == "joined" else None
        return decide(
            state.groups, state.scores, cost, goal_ms, state.model_name, state.current, state.round_to, joined
        )

    def describe(self) -> MethodDescription:
        return MethodDescription(method=self.name, importance=self.importance, solver=SOLVERS.get(self.solver))
