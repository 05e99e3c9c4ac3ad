"""``trtprune prune``: a model pruned to a latency budget measured in the engine, over k stages.

The pipeline, one module per step, each with typed inputs and outputs:

1. :mod:`~trtprune.prune.inputs`: the table, budget, model, data and method, checked and
   loaded before any run directory exists (:class:`PruneInputs`).
2. :mod:`~trtprune.prune.stage`, once per stage: score, decide, match the choice to the
   stage target by building and timing it (:mod:`~trtprune.prune.timer`, on the table of
   :mod:`~trtprune.prune.tables`), soft-mask, fine-tune (:class:`StageRecord`).
3. :mod:`~trtprune.prune.deploy`: physical pruning, the final fine-tune, export, the
   backend's deployable engine, top-1 in ONNX Runtime, latency beside the unpruned model.
4. :mod:`~trtprune.prune.result`: the typed :class:`PruneResult` that report.json holds and
   ``compare`` and the CLI read; :mod:`~trtprune.prune.run` ties the steps together.
"""

from __future__ import annotations

from trtprune.prune.config import PruneConfig
from trtprune.prune.result import PruneResult, load_result
from trtprune.prune.run import run_prune
from trtprune.prune.stage import StageRecord

__all__ = ["PruneConfig", "PruneResult", "StageRecord", "load_result", "run_prune"]
