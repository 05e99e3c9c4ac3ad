"""Atomic file and directory writes and copies: an output is complete or absent."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trtprune.core.errors import TrtpruneError


def output_folder(dest: str | os.PathLike[str]) -> Path:
    """Create the folder ``dest`` goes into; a folder that cannot be created or written is a
    one-line :class:`TrtpruneError` naming it (not a traceback)."""

    folder = Path(dest).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise TrtpruneError(
            f"cannot write {dest}: the folder {folder} cannot be created or written ({exc.strerror or exc}); "
            "choose another --out"
        ) from None
    return folder


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only on success."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=output_folder(dest))
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest``; move it onto ``dest`` only on success."""
    dest = Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=output_folder(dest)))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(dest: str | os.PathLike[str], text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def copy_file(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Copy the file ``src`` (times and mode kept) onto ``dest``, whole or not at all."""
    with atomic_path(dest) as tmp:
        shutil.copy2(src, tmp)


def copy_sqlite(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Copy the SQLite database ``src`` onto ``dest``, whole or not at all, with SQLite's backup
    API: a database another process has open for writing (its WAL included) is copied as one
    consistent snapshot, which copying the file would not give."""
    with atomic_path(dest) as tmp:
        with contextlib.closing(sqlite3.connect(src)) as source, contextlib.closing(sqlite3.connect(tmp)) as copy:
            source.backup(copy)


def copy_tree(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Replace the folder ``dest`` with a copy of the folder ``src``, whole or not at all."""
    with atomic_dir(dest) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
