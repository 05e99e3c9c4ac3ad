"""HALP's latency table: one entry per conv (or linear) configuration, measured alone.

Keyed as HALP keys it, by (batch, c_in, c_out, feature map, kernel, stride, groups)
(plus padding and dilation, which decide the op). Each entry is one layer exported
to ONNX on its own and timed in the same backend, precision and timing harness as
the group table; a network's latency is the sum of its layers' entries, so
batch norms, activations, adds and pooling are not timed, as in HALP.

Entries live in a SQLite file beside the group table, one committed row per
measurement, keyed also by the environment fingerprint, so reruns (and every
method run that shares the file) measure only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtprune.backends import get_backend
from trtprune.engine.candidates import prepare
from trtprune.engine.timing import measure_interleaved
from trtprune.graph.layer_shapes import LayerCall, layer_calls

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvKey:
    kind: str  # "conv" or "linear"
    batch: int
    c_in: int
    c_out: int
    h: int
    w: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def text(self) -> str:
        return json.dumps(astuple(self))

    def module(self) -> nn.Module:
        from torch import nn

        if self.kind == "linear":
            return nn.Linear(self.c_in, self.c_out)
        return nn.Conv2d(
            self.c_in, self.c_out, self.kernel, self.stride, self.padding, self.dilation, self.groups, bias=False
        )

    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.c_in) if self.kind == "linear" else (self.batch, self.c_in, self.h, self.w)

    def resized(self, c_in: int, c_out: int) -> ConvKey:
        """The same layer with other channel counts (a depthwise conv keeps groups == channels)."""
        if self.kind == "conv" and self.groups > 1 and self.groups == self.c_in == self.c_out:
            c = c_out if c_out != self.c_out else c_in
            return replace(self, c_in=c, c_out=c, groups=c)
        return replace(self, c_in=c_in, c_out=c_out)


def layer_keys(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, ConvKey]:
    """Every Conv2d and Linear layer of ``model`` as it runs on ``input_shape`` (its last call)."""
    return {name: key for name, runs in layer_calls(model, input_shape).items() if (key := _key(runs[-1])) is not None}


def _key(call: LayerCall) -> ConvKey | None:
    from torch import nn

    m, x = call.module, call.input_shape
    if isinstance(m, nn.Conv2d):
        return ConvKey(
            "conv", x[0], m.in_channels, m.out_channels, x[2], x[3], tuple(m.kernel_size), tuple(m.stride),
            tuple(m.padding), tuple(m.dilation), m.groups,
        )  # fmt: skip
    if isinstance(m, nn.Linear):
        return ConvKey("linear", x[0], m.in_features, m.out_features, 1, 1)
    return None


def _fields(record: Any) -> dict[str, Any]:
    """A record's settings without its format number (a re-versioned record measures the same)."""
    return {k: v for k, v in record.to_json().items() if k != "format"}


class ConvTable:
    """Per-layer latencies (ms) in one backend; measures missing keys on demand."""

    def __init__(self, path: str | Path, backend: str, config: Any, timing: Any, batch_size: int = 16) -> None:

        self.path, self.backend, self.config, self.timing = Path(path), backend, config, timing
        self.batch_size = batch_size
        env = get_backend(backend).environment(config)
        fingerprint = {"backend": backend, "environment": env, "config": _fields(config), "timing": _fields(timing)}
        self.env_id = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS convs (env TEXT, key TEXT, median_ms REAL, spread REAL, PRIMARY KEY (env, key))"
        )
        self.db.commit()
        self.measured = 0

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ConvTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lookup(self, keys: Iterable[ConvKey]) -> dict[ConvKey, float]:
        """Latency of every key, measuring (and storing) the missing ones first."""
        keys = list(dict.fromkeys(keys))
        known = self._stored(keys)
        families: dict[ConvKey, list[ConvKey]] = {}
        for k in keys:
            if k not in known:  # the widths of one layer are timed side by side: their differences are the costs
                families.setdefault(replace(k, c_in=0, c_out=0, groups=0), []).append(k)
        for family in families.values():
            for i in range(0, len(family), self.batch_size):
                known.update(self._measure(family[i : i + self.batch_size]))
        return {k: known[k] for k in keys}

    def _stored(self, keys: list[ConvKey]) -> dict[ConvKey, float]:
        rows = dict(self.db.execute("SELECT key, median_ms FROM convs WHERE env = ?", (self.env_id,)).fetchall())
        return {k: rows[k.text()] for k in keys if k.text() in rows}

    def _measure(self, keys: list[ConvKey]) -> dict[ConvKey, float]:
        from contextlib import ExitStack

        with ExitStack() as stack:
            runners = {
                k.text(): stack.enter_context(prepare(k.module().eval(), k.input_shape(), self.backend, self.config))
                for k in keys
            }
            timings = measure_interleaved({n: r.timed for n, r in runners.items()}, self.timing)
        out = {}
        for k in keys:
            t = timings[k.text()]
            self.db.execute(
                "INSERT OR REPLACE INTO convs VALUES (?, ?, ?, ?)", (self.env_id, k.text(), t.median_ms, t.spread)
            )
            out[k] = t.median_ms
        self.db.commit()
        self.measured += len(keys)
        log.info("conv table: measured %d layer configurations (%d so far)", len(keys), self.measured)
        return out
