"""trtprune: deployment-aware structured pruning for convolutional networks.

The public API is re-exported lazily so that ``import trtprune`` stays cheap
(no torch, onnx or onnxruntime import until a function that needs them runs).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {  # the public API: name -> the module that defines it (the CLI uses nothing else)
    "TrtpruneError": "trtprune.core.errors",
    "build_model": "trtprune.models",
    "list_models": "trtprune.models",
    "load_checkpoint": "trtprune.models.checkpoint",
    "save_checkpoint": "trtprune.models.checkpoint",
    "find_groups": "trtprune.graph.groups",
    "Plan": "trtprune.surgery.plan",
    "apply_plan": "trtprune.surgery.apply",
    "apply_masks": "trtprune.surgery.apply",
    "keep_ratio_plan": "trtprune.surgery.plan",
    "export_onnx": "trtprune.engine.export",
    "get_dataset": "trtprune.data",
    "train": "trtprune.train.loop",
    "evaluate": "trtprune.train.loop",
    "sp_lamp": "trtprune.decide.importance",
    "group_knapsack": "trtprune.decide.solver",
    "LutConfig": "trtprune.lut.config",
    "build_lut": "trtprune.lut.build",
    "Remeasure": "trtprune.lut.frames",
    "PruneConfig": "trtprune.prune",
    "run_prune": "trtprune.prune",
    "get_method": "trtprune.methods",
    "CompareConfig": "trtprune.compare.config",
    "run_compare": "trtprune.compare.run",
    "format_shape": "trtprune.core.shapes",
    "load_model": "trtprune.models.loading",
    "TrainJob": "trtprune.train.job",
    "run_train_job": "trtprune.train.job",
    "get_spec": "trtprune.data",
    "get_task": "trtprune.tasks",
    "onnx_metadata": "trtprune.engine.export",
    "prune_loaded": "trtprune.models.loading",
    "compare_onnx": "trtprune.report.side_by_side",
    "BackendConfig": "trtprune.backends",
    "TimingConfig": "trtprune.engine.timing",
    "write_json": "trtprune.core.atomic",
    "LutStore": "trtprune.lut.store",
    "LatencyModel": "trtprune.lut.predict",
    "verify": "trtprune.lut.verify",
    "plot_lut": "trtprune.lut.plot",
    "bench_path": "trtprune.engine.bench",
    "default_table": "trtprune.lut.store",
    "parse_method_spec": "trtprune.methods.base",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trtprune' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY) + ["__version__"]
