"""A :class:`Task` and the registry of them (filled by :mod:`trtprune.tasks.classify` and
:mod:`trtprune.tasks.detect`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trtprune.core.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset

# (model in train mode, batch, device, distillation or None) -> (mean loss of the batch, its sample count)
BatchLoss = Callable[["nn.Module", Any, "torch.device", Any], tuple["torch.Tensor", int]]


@dataclass(frozen=True)
class Task:
    """How models of one task train, evaluate and deploy.

    ``metric`` names the headline metric (``top1``; a detector's ``map``, COCO mAP@[.5:.95]);
    a training history, a stage record and a prune result hold it where they say top-1.
    ``evaluate(model, dataset, batch_size, device)`` is that metric of a PyTorch model in eval mode;
    ``evaluate_onnx(path, dataset, threads)`` every metric of an exported model in ONNX Runtime.
    ``collate`` batches the dataset's items (None: torch's default). ``distill_refusal(model_name)``
    says why ``--distill`` does not apply to that model (None where it does). ``network_part(model)`` is the part of the
    deployed model that pruning changes, timed apart from the whole in the report (None: all of it).
    ``drop_last`` drops a short last training batch where the train set holds more than one batch.
    """

    name: str
    model_noun: str  # "classifier", "detector"
    data_noun: str  # "classification", "detection"
    metric: str
    metric_label: str
    data_hint: str  # the data such a model takes, for the one-line refusal of other data
    batch_loss: BatchLoss
    evaluate: Callable[[nn.Module, Dataset, int, torch.device], float]
    evaluate_onnx: Callable[[str | os.PathLike[str], Dataset, int | None], dict[str, float]]
    collate: Callable[[list[Any]], Any] | None = None
    distill_refusal: Callable[[str], str | None] = lambda _name: None
    network_part: Callable[[nn.Module], nn.Module] | None = None
    drop_last: bool = False  # drop a short last training batch (a detector's 1x1 maps cannot batch-norm one image)


TASKS: Registry[Task] = Registry("task")
