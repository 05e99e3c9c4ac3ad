"""Atomic writes and copies: the destination is the whole source or untouched."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from trtprune.core.atomic import copy_file, copy_sqlite, copy_tree, write_text


def test_copy_file_is_whole_or_absent(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 1000)
    copy_file(src, tmp_path / "out" / "b.bin")
    assert (tmp_path / "out" / "b.bin").read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        copy_file(tmp_path / "missing", tmp_path / "out" / "c.bin")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.bin"]  # no temporary left behind


def test_copy_sqlite_takes_a_database_open_for_writing(tmp_path):
    """Rows committed to the WAL but not yet checkpointed into the file are in the copy."""
    db = tmp_path / "t.db"
    with closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA wal_autocheckpoint=0")
        con.execute("CREATE TABLE rows (x INTEGER)")
        con.executemany("INSERT INTO rows VALUES (?)", [(i,) for i in range(100)])
        con.commit()
        assert (tmp_path / "t.db-wal").stat().st_size > 0  # still open, the rows only in the WAL
        copy_sqlite(db, tmp_path / "copy" / "t.db")
    with closing(sqlite3.connect(tmp_path / "copy" / "t.db")) as copy:
        assert copy.execute("SELECT COUNT(*), SUM(x) FROM rows").fetchone() == (100, sum(range(100)))


def test_copy_tree_replaces_the_folder(tmp_path):
    src = tmp_path / "src"
    write_text(src / "epoch2.pt", "two")
    write_text(src / "sub" / "settings.json", "{}")
    dest = tmp_path / "kept"
    write_text(dest / "epoch1.pt", "one")  # an older copy: replaced, not merged
    copy_tree(src, dest)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["epoch2.pt", "sub", "sub/settings.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
