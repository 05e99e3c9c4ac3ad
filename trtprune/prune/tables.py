"""The table a stage decides with: the run's table, or (``--remeasure``) one measured around the
current widths, and the factor from its milliseconds to the run's table's."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from trtprune.graph.groups import find_groups
from trtprune.lut.build import build_into, table_meta
from trtprune.lut.predict import LatencyModel
from trtprune.lut.store import LutStore
from trtprune.models.loading import LoadedModel
from trtprune.surgery.apply import prune_copy

if TYPE_CHECKING:
    from torch import nn

    from trtprune.lut.predict import LatencyModel
    from trtprune.prune.inputs import PruneInputs


@dataclass(frozen=True)
class TableView:
    """A table and the factor from its milliseconds to the run's table's."""

    latency: LatencyModel
    scale: float
    build_s: float = 0.0  # seconds spent measuring it (remeasured tables)


def remeasured(
    inputs: PruneInputs, base_model: nn.Module, current: dict[str, int], current_ms: float, path: Path
) -> TableView:
    """A fresh table around ``current`` (the widths kept so far; ``current_ms`` their measured latency in
    the run's table's milliseconds), built with the run's table's settings into ``path``."""

    t0 = time.perf_counter()
    shape = inputs.input_shape
    model = prune_copy(base_model, inputs.groups, current)
    groups = find_groups(model, shape)
    loaded = LoadedModel(model, inputs.model_name, shape, inputs.loaded.num_classes, None, None)
    config = replace(inputs.latency.settings.build, model=inputs.model_name, input_shape=shape)
    with LutStore(path, create=True) as store:
        store.init_meta(table_meta(loaded, groups, config))
        build_into(config, loaded, groups, store)
        latency = LatencyModel(store, interactions=False)  # what the separable knapsack optimises
    return TableView(latency, current_ms / latency.base_ms, time.perf_counter() - t0)
