"""The benchmarks' parts machinery (``benchmarks/_suite.py``): sessions alternating between two
processors lose no run of a comparison kept to one processor (``--one-processor``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _suite

    yield _suite
    sys.modules.pop("_suite", None)


def _make(root: Path, name: str, share: float) -> None:
    run = root / "compare-m" / "runs" / name
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps({"measured_share": share, "top1": 0.5}))


def _runs(root: Path) -> dict[str, float]:
    return {
        p.parent.name: json.loads(p.read_text())["measured_share"]
        for p in (root / "compare-m" / "runs").glob("*/report.json")
    }


def test_runs_of_each_processor_wait_on_its_shelf_and_come_back(suite, monkeypatch, tmp_path):
    state, out, grid = tmp_path / "state", tmp_path / "out", {"a", "b"}
    parts = suite.State(state, out)
    monkeypatch.setattr(suite, "cpu_name", lambda: "Intel X")
    for name in grid:
        _make(out, name, 0.4)
        _make(state, name, 0.4)
    parts.note_commits("m", "intel-commit")

    monkeypatch.setattr(suite, "cpu_name", lambda: "AMD Y")
    assert sorted(parts.set_aside_foreign("m", grid)) == ["intel-x/a", "intel-x/b"]
    assert _runs(out) == {} and _runs(state) == {}
    _make(out, "a", 0.45)  # this part makes run a again on AMD
    _make(state, "a", 0.45)
    parts.note_commits("m", "amd-commit")

    monkeypatch.setattr(suite, "cpu_name", lambda: "Intel X")
    assert list(parts.set_aside_foreign("m", grid)) == ["amd-y/a"]
    assert _runs(out) == _runs(state) == {"a": 0.4, "b": 0.4}  # Intel's runs are back, with their records
    assert parts.read("machines.json")["compare-m"] == {"a": "Intel X", "b": "Intel X"}
    assert parts.read("commits.json")["compare-m"] == {"a": "intel-commit", "b": "intel-commit"}
    assert list(parts.read("set_aside.json")["compare-m"]) == ["amd-y/a"]

    monkeypatch.setattr(suite, "cpu_name", lambda: "AMD Y")
    parts.set_aside_foreign("m", grid)
    assert _runs(out) == _runs(state) == {"a": 0.45}  # and AMD's, on AMD: nothing lost either way
    assert parts.read("commits.json")["compare-m"] == {"a": "amd-commit"}
    assert sorted(parts.read("set_aside.json")["compare-m"]) == ["intel-x/a", "intel-x/b"]
