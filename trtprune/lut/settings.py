"""A table's settings, read in one place: how it was built, its layers' joins, its probes' widths.

Tables store their settings in ``LutMeta.config``. Format 3 (this one) adds each group's
resolution (the stage whose probes fit its scale); an older trtprune refuses a format-3 table
rather than predicting without the stage scales. Format 2 nests the build configuration; format 1 (tables written before) held the build configuration's fields flat
beside ``layers`` and ``probe_widths``, with model and checkpoint in the meta, and may carry
keys of older builds (``precision`` for ``row_error``; ``block_noise_share``,
``block_min_rounds``; the timing's ``early_spread`` and ``noise_floor_ms``), which are read
with a warning. :func:`read_settings` is the only reader; nothing outside ``trtprune.lut``
indexes ``meta.config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from trtprune.core.records import Record
from trtprune.lut.config import LutConfig
from trtprune.lut.layers import LayerJoin

if TYPE_CHECKING:
    from trtprune.backends import BackendConfig
    from trtprune.engine.timing import TimingConfig
    from trtprune.lut.store import LutMeta


@dataclass(frozen=True)
class TableSettings(Record):
    FORMAT = 3
    NESTED = {"build": LutConfig, "layers": LayerJoin}

    build: LutConfig
    layers: tuple[LayerJoin, ...] = ()
    probe_widths: dict[str, dict[str, int]] = field(default_factory=dict)  # probe name -> group -> width
    # group -> the spatial size of its maps ("HxW"); empty in tables of format 2 and before (no stage scales)
    resolutions: dict[str, str] = field(default_factory=dict)

    @property
    def backend_config(self) -> BackendConfig:
        return self.build.backend_config

    @property
    def timing(self) -> TimingConfig:
        return self.build.timing


def measuring_backend(meta: LutMeta) -> tuple[str, BackendConfig]:
    """The engine and settings a table's emitted models are measured in: the table's, at fp32 (an
    emitted ONNX carries its precision itself)."""
    return meta.backend, replace(read_settings(meta).backend_config, precision="fp32")


def read_settings(meta: LutMeta, source: str = "table settings") -> TableSettings:
    """The settings of a table, of any format this trtprune reads."""
    config = dict(meta.config)
    if config.get("format", 1) >= 2:
        return TableSettings.from_json(config, source)
    layers = [_join_v1(j) for j in config.pop("layers", [])]
    widths = config.pop("probe_widths", {})
    if isinstance(config.get("probes"), dict):  # the first probes stored their widths under "probes"
        widths = widths or config.pop("probes")
        config.pop("probes", None)
    build = LutConfig.from_json({**config, "model": meta.model, "checkpoint": meta.checkpoint}, source)
    return TableSettings(build, tuple(layers), widths)


def _join_v1(obj: dict[str, Any]) -> LayerJoin:
    return LayerJoin(obj["layer"], obj.get("in"), obj.get("out"), int(obj["macs"]))
