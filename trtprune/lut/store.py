"""The table's storage: one SQLite file, one committed row per measurement.

Every row is committed as soon as it is measured (WAL journal), so a job killed
at any moment (even ``kill -9``) loses at most the batch in flight, and a rerun
of the same command skips every stored row. A row copied from a structurally
identical group (block mode's dedupe) names its source in ``copied_from``. The ``meta`` table records the
environment fingerprint, the model fingerprint, precision, batch, input shape,
mode and grid: a table is refused when any of them differs from what is asked.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

from trtprune.core.atomic import output_folder
from trtprune.core.errors import TrtpruneError, UsageError
from trtprune.core.records import Record
from trtprune.lut.frames import Frame, FrameShift

FORMAT = 1

# Environment keys whose difference makes a table invalid (timings from another engine or machine).
_ENV_KEYS = ("engine", "version", "device", "processor", "gpu", "threads", "machine")


def default_table(model: str | None = None) -> Path:
    """Where ``make lut MODEL=...`` writes a model's table; without a model, the newest table there."""
    if model:
        return Path("engines") / model / "lut.db"
    tables = sorted(Path("engines").glob("*/lut.db"), key=lambda p: p.stat().st_mtime)
    if not tables:
        raise UsageError("no latency table found under engines/: run 'make lut MODEL=...' or pass --lut")
    return tables[-1]


class LutMismatch(TrtpruneError):
    """A table built for another model, engine (or engine version), machine or setting: a wrong
    table for the command, so a usage error (exit 2) whose message names the fix."""

    exit_code = 2


@dataclass(frozen=True)
class LutMeta(Record):
    """Everything a table's numbers depend on. ``config`` holds the table's settings as stored
    (read them with :func:`trtprune.lut.settings.read_settings`)."""

    FORMAT = 2  # format 1 also stored ``channels`` (always equal to ``widths``)
    REMOVED = {"channels": 2}

    model: str
    input_shape: list[int]
    backend: str
    precision: str
    mode: str
    environment: dict[str, Any]
    widths: dict[str, int]  # the model fingerprint: every group's current width
    checkpoint: str | None = None
    step: int = 8
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return int(self.input_shape[0])

    def mismatch(self, other: LutMeta) -> str | None:
        """Why ``other`` (what is asked) cannot use this table, or None."""
        if self.model != other.model:
            return f"it was built for model {self.model!r}, not {other.model!r}"
        if self.widths != other.widths:
            diff = next(
                k for k in sorted(set(self.widths) | set(other.widths)) if self.widths.get(k) != other.widths.get(k)
            )
            return f"the model's widths differ (group {diff!r}: table {self.widths.get(diff)}, model {other.widths.get(diff)})"
        for key in ("input_shape", "backend", "precision", "mode"):
            if getattr(self, key) != getattr(other, key):
                return f"its {key} is {getattr(self, key)!r}, not {getattr(other, key)!r}"
        for key in _ENV_KEYS:
            a, b = self.environment.get(key), other.environment.get(key)
            if a != b:
                return f"it was measured with {key}={a!r}, this machine has {key}={b!r}"
        return None


@dataclass(frozen=True)
class Row:
    group: str
    width: int
    median_ms: float  # paired: the median over rounds of candidate / reference, times the reference's median
    p90_ms: float
    spread: float
    noisy: bool
    ref_ms: float  # the reference (unpruned network or block) measured in the same interleaved batch
    copied_from: str | None = None  # the group measured for this one (an identical block), or None if measured

    @property
    def delta_ms(self) -> float:
        """Latency change against the reference measured beside it (Eq. 7's difference)."""
        return self.median_ms - self.ref_ms


@dataclass(frozen=True)
class Pair:
    """Two groups joined by a layer (one feeds it, the other leaves it), cut together and alone.

    A conv's cost grows with c_in x c_out, so cutting both groups saves less than the
    two cuts alone: ``interaction_ms`` (joint - a - b + ref, all measured in one
    interleaved batch) corrects the sum of single-group changes.
    """

    a: str
    b: str
    wa: int
    wb: int
    joint_ms: float
    a_ms: float
    b_ms: float
    ref_ms: float
    copied_from: tuple[str, str] | None = None  # the pair measured for this one (an identical joint block)

    @property
    def interaction_ms(self) -> float:
        return self.joint_ms - self.a_ms - self.b_ms + self.ref_ms


BASE = "__base__"  # the row holding the whole unpruned network's latency


@dataclass(frozen=True)
class Probe:
    """A whole network with every group cut at once, timed beside the unpruned network.

    Probes measure what the sum of single-group changes misses (a layer between two cut
    groups costs about c_in x c_out); :class:`~trtprune.lut.predict.LatencyModel` fits its
    joined-layer weight to them. Their widths are in ``meta.config['probe_widths']``.
    """

    name: str
    ms: float
    net_ms: float  # the unpruned network, in the same interleaved batch

    @property
    def share(self) -> float:
        return self.ms / self.net_ms


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    grp TEXT NOT NULL, width INTEGER NOT NULL, median_ms REAL NOT NULL, p90_ms REAL NOT NULL,
    spread REAL NOT NULL, noisy INTEGER NOT NULL, ref_ms REAL NOT NULL,
    measured_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (grp, width));
CREATE TABLE IF NOT EXISTS pairs (
    a TEXT NOT NULL, b TEXT NOT NULL, wa INTEGER NOT NULL, wb INTEGER NOT NULL,
    joint_ms REAL NOT NULL, a_ms REAL NOT NULL, b_ms REAL NOT NULL, ref_ms REAL NOT NULL,
    measured_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (a, b));
CREATE TABLE IF NOT EXISTS block_refs (
    grp TEXT PRIMARY KEY, block_ms REAL NOT NULL, net_ms REAL NOT NULL,
    measured_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS probes (
    name TEXT PRIMARY KEY, ms REAL NOT NULL, net_ms REAL NOT NULL,
    measured_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
"""


class LutStore:
    """An open table. Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise TrtpruneError(
                f"latency table {self.path} not found; build it with 'trtprune lut MODEL --out {self.path}'"
            )

        if create:
            output_folder(self.path)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            for table in ("rows", "pairs"):  # tables written before dedupe lack the column
                columns = {c[1] for c in self.db.execute(f"PRAGMA table_info({table})")}
                if "copied_from" not in columns:
                    with self.db:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN copied_from TEXT")
        except sqlite3.DatabaseError as exc:
            raise TrtpruneError(f"{self.path} is not a trtprune latency table ({exc})") from None

    def __enter__(self) -> LutStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # metadata -----------------------------------------------------------------
    def meta(self) -> LutMeta | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='meta'").fetchone()
        if row is None:
            return None
        return LutMeta.from_json(json.loads(row[0]), f"table {self.path}")

    def require_meta(self) -> LutMeta:
        meta = self.meta()
        if meta is None:
            raise TrtpruneError(f"{self.path} holds no table yet; build it with 'trtprune lut'")
        return meta

    def init_meta(self, meta: LutMeta, force: bool = False) -> None:
        """Record ``meta`` in a new table, or check an existing table matches it."""
        old = self.meta()
        if old is not None:
            reason = old.mismatch(meta)
            if reason and not force:
                raise LutMismatch(
                    f"table {self.path} cannot be reused: {reason}; use another --out or pass --force to overwrite"
                )
            if reason:
                with self.db:
                    self._clear()
                    self.db.execute("DELETE FROM meta WHERE key IN ('cost', 'discarded')")
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('meta', ?)", (json.dumps(meta.to_json()),))

    def add_cost(self, engines: int, measured: int, copied: int, wall_s: float) -> None:
        """Add one build invocation's cost to the table's total (a resumed build adds its own part)."""
        cost = self.cost()
        cost = {
            "engines": cost["engines"] + engines,
            "rows": cost["rows"] + measured,
            "copied": cost["copied"] + copied,
            "wall_s": cost["wall_s"] + wall_s,
            "builds": cost["builds"] + 1,
        }
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('cost', ?)", (json.dumps(cost),))

    def cost(self) -> dict[str, Any]:
        """What building the table cost, over every invocation: engines built, rows measured and
        copied, wall seconds, invocations (zeros for tables built before the cost was kept)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='cost'").fetchone()
        return json.loads(row[0]) if row else {"engines": 0, "rows": 0, "copied": 0, "wall_s": 0.0, "builds": 0}

    # rows ---------------------------------------------------------------------
    def add(self, rows: list[Row]) -> None:
        with self.db:
            self._insert(rows)

    def _insert(self, rows: list[Row]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO rows (grp, width, median_ms, p90_ms, spread, noisy, ref_ms, copied_from) "
            "VALUES (?,?,?,?,?,?,?,?)",
            [(r.group, r.width, r.median_ms, r.p90_ms, r.spread, int(r.noisy), r.ref_ms, r.copied_from) for r in rows],
        )

    def rows(self, group: str | None = None) -> list[Row]:
        sql = "SELECT grp, width, median_ms, p90_ms, spread, noisy, ref_ms, copied_from FROM rows"
        args: tuple = ()
        if group is not None:
            sql += " WHERE grp=?"
            args = (group,)
        return [
            Row(g, int(w), m, p, s, bool(n), r, c)
            for g, w, m, p, s, n, r, c in self.db.execute(sql + " ORDER BY grp, width", args)
        ]

    def done(self, group: str) -> set[int]:
        return {int(w) for (w,) in self.db.execute("SELECT width FROM rows WHERE grp=?", (group,))}

    def add_pair(self, pair: Pair) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO pairs (a, b, wa, wb, joint_ms, a_ms, b_ms, ref_ms, copied_from) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (*astuple(pair)[:8], "\t".join(pair.copied_from) if pair.copied_from else None),
            )

    def pairs(self) -> list[Pair]:
        sql = "SELECT a, b, wa, wb, joint_ms, a_ms, b_ms, ref_ms, copied_from FROM pairs ORDER BY a, b"
        return [
            Pair(a, b, int(wa), int(wb), j, x, y, r, tuple(c.split("\t")) if c else None)
            for a, b, wa, wb, j, x, y, r, c in self.db.execute(sql)
        ]

    def add_base(
        self, base: Row | None, probes: list[Probe], block_refs: dict[str, tuple[float, float]] | None = None
    ) -> None:
        """In one transaction: the unpruned network's row (None: keep the stored one), the probes timed
        beside it and (block mode) each group's unpruned block, ``{group: (block_ms, net_ms)}``."""
        with self.db:
            self._insert([base] if base is not None else [])
            self.db.executemany(
                "INSERT OR REPLACE INTO probes (name, ms, net_ms) VALUES (?,?,?)",
                [(p.name, p.ms, p.net_ms) for p in probes],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO block_refs (grp, block_ms, net_ms) VALUES (?,?,?)",
                [(g, b, n) for g, (b, n) in (block_refs or {}).items()],
            )

    def block_refs(self) -> dict[str, tuple[float, float]]:
        """``{group: (block_ms, net_ms)}``: block mode's unpruned blocks timed beside the network."""
        return {g: (b, n) for g, b, n in self.db.execute("SELECT grp, block_ms, net_ms FROM block_refs")}

    def add_closing(self, frame: Frame) -> None:
        """The frame timed again at the end of the build (LutConfig format 4)."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('closing', ?)", (json.dumps(frame.to_json()),))

    def discard(self, moved: FrameShift) -> None:
        """In one transaction: drop every measurement of a build whose frame moved (rows, pairs, probes,
        blocks; its closing frame was never stored) and record how far it moved; the build then
        measures the table again (:class:`~trtprune.lut.frames.Remeasure`)."""
        history = [m.to_json() for m in self.discarded()] + [moved.to_json()]
        with self.db:
            self._clear()
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('discarded', ?)", (json.dumps(history),))

    def discarded(self) -> list[FrameShift]:
        """How far the frame of each discarded measurement of this table moved (oldest first)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='discarded'").fetchone()
        return [FrameShift.from_json(m, f"table {self.path}") for m in json.loads(row[0])] if row else []

    def _clear(self) -> None:
        for table in ("rows", "pairs", "probes", "block_refs"):
            self.db.execute(f"DELETE FROM {table}")
        self.db.execute("DELETE FROM meta WHERE key='closing'")

    def closing(self) -> Frame | None:
        """The closing frame, or None (a build not finished yet, or a table of format 3 and before)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='closing'").fetchone()
        return Frame.from_json(json.loads(row[0]), f"table {self.path}") if row else None

    def probes(self) -> list[Probe]:
        """The probes (empty in tables built before they were measured)."""
        return [Probe(n, m, b) for n, m, b in self.db.execute("SELECT name, ms, net_ms FROM probes ORDER BY name")]

    def base_ms(self) -> float:
        rows = self.rows(BASE)
        if not rows:
            raise TrtpruneError(f"table {self.path} is incomplete (no base latency); rerun 'trtprune lut' to finish it")
        return rows[0].median_ms

    def export_json(self) -> dict[str, Any]:
        meta = self.require_meta()
        return {
            "format": FORMAT,
            "meta": {k: v for k, v in meta.to_json().items() if k != "environment"},
            "environment": meta.environment,
            "base_ms": self.base_ms(),
            "cost": self.cost(),
            "rows": [{**asdict(r), "delta_ms": r.delta_ms} for r in self.rows() if r.group != BASE],
            "pairs": [{**asdict(p), "interaction_ms": p.interaction_ms} for p in self.pairs()],
            "probes": [{**asdict(p), "share": p.share} for p in self.probes()],
            "block_refs": {g: {"block_ms": b, "net_ms": n} for g, (b, n) in self.block_refs().items()},
            "closing": closing.to_json() if (closing := self.closing()) else None,
        }
