"""The one exception type users see.

Errors a user can cause (bad path, unknown model, malformed plan, missing data,
missing backend) raise :class:`TrtpruneError`; the CLI prints its message as one
line and exits with ``exit_code``. Bugs keep their traceback.
"""

from __future__ import annotations


class TrtpruneError(Exception):
    """A user-caused failure: the message says what went wrong and how to fix it."""

    exit_code = 1


class UsageError(TrtpruneError):
    """Malformed command-line input (bad shape string, unknown name)."""

    exit_code = 2


class UnsupportedModelError(TrtpruneError):
    """An architecture (or one of its layers) that cannot be pruned or exported."""


class PlanError(TrtpruneError):
    """A pruning plan that does not fit the model it is applied to."""


class DataError(TrtpruneError):
    """A dataset that is missing or malformed."""


class CheckpointError(TrtpruneError):
    """A checkpoint that is missing, corrupt or made for another model."""


class InfeasibleBudget(TrtpruneError):
    """No pruning choice meets the latency budget; the message gives the smallest achievable
    (``smallest_ms``, where the raiser knows it, in the unit of the budget it was given)."""

    def __init__(self, message: str, smallest_ms: float | None = None) -> None:
        super().__init__(message)
        self.smallest_ms = smallest_ms
