"""Looking up the registered tasks (the task modules register when imported)."""

from __future__ import annotations

from trtprune.core.errors import UsageError
from trtprune.tasks import classify, detect  # noqa: F401 (importing them registers them)
from trtprune.tasks.base import TASKS, Task


def get_task(name: str) -> Task:
    """The registered task ``name`` ("classify" or "detect")."""
    return TASKS.get(name)


def check_task(model_name: str, model_task: str, data_name: str, data_task: str) -> None:
    """A model may only be trained and evaluated on data of its own task (one line, exit 2, otherwise)."""
    if model_task != data_task:
        want = get_task(model_task)
        raise UsageError(
            f"{model_name} is a {want.model_noun} but --data {data_name} is {get_task(data_task).data_noun} data: "
            f"{want.data_hint}"
        )
