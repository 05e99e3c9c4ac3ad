"""Versioned records: frozen dataclasses with a format number and strict JSON round-trips.

Every config and result trtprune writes (tables' settings, prune and compare configs, the
prune result) derives from :class:`Record`. ``to_json`` writes the fields plus ``format``;
``from_json`` reads them back and refuses what it cannot trust, naming the key:

- a key the record does not have is an error, unless an older format had it and it was
  dropped since (``REMOVED``): such a key is read with a warning and ignored;
- a format newer than the code's is an error (upgrade trtprune);
- a key added since a file's format (``ADDED``) reads as the value that reproduces what that
  format meant, not as today's default (a new default must not change what an old file says);
- nested records (``NESTED``: a record, or a tuple of them) and tuple fields are rebuilt
  from their JSON objects and lists.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar, TypeVar

from trtprune.core.errors import TrtpruneError

log = logging.getLogger(__name__)
R = TypeVar("R", bound="Record")


class RecordError(TrtpruneError):
    """A stored config or result that this trtprune cannot read as it is."""


class Record:
    """Mixin for frozen dataclasses: strict, versioned JSON."""

    FORMAT: ClassVar[int] = 1
    REMOVED: ClassVar[dict[str, int]] = {}  # key -> the format that dropped it (older files may carry it)
    NESTED: ClassVar[dict[str, type[Record]]] = {}  # field -> the record type it holds
    ADDED: ClassVar[dict[str, tuple[int, Any]]] = {}  # key -> (the format that added it, its value before)
    KEY: ClassVar[str] = "key"  # what a key is called in errors ("training option" for a user's options)
    ERROR: ClassVar[type[TrtpruneError]] = RecordError

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.FORMAT}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    @classmethod
    def from_json(cls: type[R], obj: Any, source: str | None = None) -> R:
        source = source or cls.__name__
        if not isinstance(obj, dict):
            raise cls.ERROR(f"{source}: expected a JSON object, not {type(obj).__name__}")
        fmt = obj.get("format", 1)  # files from before records were versioned are format 1
        if not isinstance(fmt, int) or fmt > cls.FORMAT:
            raise cls.ERROR(
                f"{source} has format {fmt!r}; this trtprune reads {cls.__name__} up to format {cls.FORMAT}: upgrade"
            )
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in obj.items():
            if key == "format":
                continue
            if key not in names:
                if key in cls.REMOVED and fmt < cls.REMOVED[key]:
                    log.warning("%s: ignoring %r (written by format %d; dropped in format %d)", source, key, fmt,
                                cls.REMOVED[key])  # fmt: skip
                    continue
                raise cls.ERROR(f"{source}: unknown {cls.KEY} {key!r}; {cls.__name__} has: {', '.join(names)}")
            kwargs[key] = _typed(cls, names[key], value, f"{source}.{key}")
        for key, (since, before) in cls.ADDED.items():
            if key not in kwargs and fmt < since:
                kwargs[key] = before
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise cls.ERROR(f"{source}: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(cls: type[Record], field: dataclasses.Field, value: Any, source: str) -> Any:
    nested = cls.NESTED.get(field.name)
    if nested is not None and isinstance(value, list):  # a tuple of records
        return tuple(nested.from_json(v, f"{source}[{i}]") for i, v in enumerate(value))
    if nested is not None and value is not None:
        return nested.from_json(value, source)
    if isinstance(value, list) and "tuple" in str(field.type):
        return tuple(value)
    return value
