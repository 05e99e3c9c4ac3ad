"""What a model's outputs mean, and everything that follows from it: the batch loss it trains with,
the metric it is evaluated by (in PyTorch and in ONNX Runtime), how its data is batched, and the
part of it whose latency pruning reaches. One :class:`Task` per kind, registered by name
("classify", "detect"); models (:class:`trtprune.models.ModelSpec`) and datasets
(:class:`trtprune.data.registry.DatasetSpec`) name theirs."""

from trtprune.tasks.base import TASKS, Task
from trtprune.tasks.registry import check_task, get_task

__all__ = ["TASKS", "Task", "check_task", "get_task"]
