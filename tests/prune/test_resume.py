"""A killed prune resumes where it stopped; torchrun prunes in data parallel; bad resumes are one line.

The runs here decide with one matching round (``--match-rounds 1``): the choice is then the
method's answer to the stage target, independent of timing noise, so a resumed run and an
uninterrupted one must end with the same plan. Every measurement is one harness call
(``--match-calls 1``): how many calls a measurement averages is tested in test_methods.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from trtprune.decide.matching import MatchPolicy
from trtprune.engine.timing import TimingConfig
from trtprune.lut.build import LutConfig, build_lut
from trtprune.prune.config import PruneConfig
from trtprune.train.config import FINETUNE

FAST = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, warmup_ms=50, retries=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, r20_table, reachable_ratio):
    """This module's folder, the shared resnet20 checkpoint and table (conftest), and a budget ratio
    inside the range that table reaches."""
    ckpt, table = r20_table
    return tmp_path_factory.mktemp("resume"), ckpt, table, f"{reachable_ratio(table, ckpt):.3f}"


def _args(setup, out: Path, *extra: str, stages: int = 2, epochs: int = 2) -> list[str]:
    root, ckpt, table, ratio = setup
    return [
        "prune", "--lut", str(table), "--checkpoint", str(ckpt), "--budget-ratio", ratio, "--stages", str(stages),
        "--finetune-epochs", str(epochs), "--limit", "768", "--limit-eval", "256", "--match-rounds", "1", "--match-calls", "1",
        "--out", str(out), *extra,
    ]  # fmt: skip


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trtprune.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _entries(path: Path) -> list[tuple]:
    if not path.exists():
        return []
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError:  # rewritten atomically, so only while the process starts
        return []
    return [(e["step"], e["stage"], e["epoch"]) for e in obj["entries"]]


def _kill_when(args: list[str], journal: Path, ready, timeout: float = 600) -> list[tuple]:
    """Start the CLI, SIGKILL it as soon as its journal satisfies ``ready``; returns the journal then."""
    proc = _cli(*args)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        entries = _entries(journal)
        if ready(set(entries)):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return entries
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill point: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the kill point was never reached")


@pytest.fixture(scope="module")
def uninterrupted(setup):
    root = setup[0]
    out = root / "whole"
    proc = _cli(*_args(setup, out))
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    return out


KILL_POINTS = {
    "inside stage 1's fine-tune": lambda e: ("epoch", 1, 1) in e and ("stage", 1, 0) not in e,
    "between stages": lambda e: ("stage", 1, 0) in e and ("decided", 2, 0) not in e,
    "during the final export": lambda e: ("final", 0, 0) in e,
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_prune_resumes_to_the_plan_of_an_uninterrupted_run(setup, uninterrupted, point, tmp_path):
    out = tmp_path / "run"
    args = _args(setup, out)
    before = _kill_when(args, out.with_name("run.partial") / "resume" / "journal.json", KILL_POINTS[point])
    assert not out.exists() and out.with_name("run.partial").exists()  # nothing half-written under RUN
    t0 = time.monotonic()
    proc = _cli(*args)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert out.is_dir() and not out.with_name("run.partial").exists()
    after = _entries(out / "journal.json")
    assert after[: len(before)] == before  # the killed run's steps are kept...
    assert len(after) == len(set(after))  # ...and none is done again
    expected = _entries(uninterrupted / "journal.json")
    assert sorted(after) == sorted(expected)
    assert json.loads((out / "plan.json").read_text()) == json.loads((uninterrupted / "plan.json").read_text())
    report, whole = (json.loads((d / "report.json").read_text()) for d in (out, uninterrupted))
    assert report["widths"] == whole["widths"]
    assert [s["widths"] for s in report["stages"]] == [s["widths"] for s in whole["stages"]]
    assert report["final_finetune"] == whole["final_finetune"]  # bit-identical fine-tuning on CPU
    print(f"{point}: resumed in {time.monotonic() - t0:.0f} s, {len(before)} of {len(after)} steps kept")


@pytest.mark.slow
def test_resuming_with_another_setting_or_version_or_a_damaged_checkpoint_is_one_line(setup, tmp_path):
    out = tmp_path / "run"
    partial = out.with_name("run.partial")
    _kill_when(_args(setup, out), partial / "resume" / "journal.json", KILL_POINTS["between stages"])
    finished = tmp_path / "finished"
    finished.mkdir()  # a run directory a user already has: never touched by a refused resume

    def refused(*args, env=None) -> str:
        proc = _cli(*args, env=env)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        return err

    ratio = setup[3]
    other = f"{float(ratio) + 0.05:.3f}"  # another (feasible) budget
    err = refused(*[a if a != ratio else other for a in _args(setup, out)])
    assert f"budget_ratio={float(ratio)}, not {float(other)}" in err and "--restart" in err
    journal = partial / "resume" / "journal.json"
    state = json.loads(journal.read_text())
    journal.write_text(json.dumps({**state, "version": "0.0.1"}))
    assert "started by trtprune 0.0.1" in refused(*_args(setup, out))
    journal.write_text(json.dumps(state))
    (partial / "resume" / "stage1.pt").write_bytes(b"not a checkpoint")
    assert "stage1.pt of the unfinished run is unreadable" in refused(*_args(setup, out))
    assert not out.exists() and finished.is_dir()
    proc = _cli(*_args(setup, out, "--restart"))  # --restart discards the damaged run and starts over
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert ("decided", 1, 0) in _entries(out / "journal.json")


def test_distill_needs_the_unpruned_models_checkpoint(setup, run_cli, tmp_path):
    table = setup[2]
    # the table was built from a checkpoint; a table without one (built from random weights) cannot distil
    from trtprune.lut.store import LutStore

    with LutStore(table) as store:
        assert store.require_meta().checkpoint
    no_ckpt = tmp_path / "lut.db"
    build_lut(
        LutConfig(model="resnet20", input_shape=(1, 1, 28, 28), step=64, small=0, refine=False, timing=FAST), no_ckpt
    )
    code, _, err = run_cli("prune", "--lut", no_ckpt, "--budget-ratio", "0.8", "--distill", "--out", tmp_path / "r")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--distill" in err and "--checkpoint" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.partial").exists()


@pytest.mark.slow
def test_the_final_fine_tune_runs_its_own_recipe(setup, tmp_path):
    """``--final-epochs``/``--final-lr``: the stage fine-tunes 1 epoch, the fine-tune after physical
    pruning 2 epochs from its own lr; the journal and the report say so."""
    out = tmp_path / "r"
    proc = _cli(*_args(setup, out, "--final-epochs", "2", "--final-lr", "0.003", stages=1, epochs=1))
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["final_finetune"]["epochs"] == 2 and report["config"]["finetune"]["epochs"] == 1
    assert report["config"]["final_finetune"]["lr"] == 0.003 and report["config"]["finetune"]["lr"] != 0.003
    epochs = [e for e in _entries(out / "journal.json") if e[0] == "epoch"]
    assert epochs == [("epoch", 1, 1), ("epoch", 0, 1), ("epoch", 0, 2)]


@pytest.mark.slow
def test_no_fine_tuning_prunes_matches_and_exports(setup, tmp_path):
    from trtprune.prune import run_prune

    _, ckpt, table, ratio = setup
    config = PruneConfig(
        lut=str(table), checkpoint=str(ckpt), budget_ratio=float(ratio), stages=2,
        finetune=replace(FINETUNE, epochs=0, limit_test=256), match=MatchPolicy(calls=1), out=str(tmp_path / "r"),
    )  # fmt: skip
    result = run_prune(config)
    assert result.final_finetune.epochs == 0 and len(result.stages) == 2
    assert (tmp_path / "r" / "model.onnx").is_file() and result.params < result.base_params
    steps = {e[0] for e in _entries(tmp_path / "r" / "journal.json")}
    assert "epoch" not in steps and {"decided", "stage", "final"} <= steps


@pytest.mark.slow
def test_torchrun_prunes_in_data_parallel_with_identical_weights_on_both_ranks(setup, tmp_path):
    """Two CPU processes (gloo): rank 0 decides, both fine-tune their shard; one stage, so the plan is
    decided on the unpruned weights and must equal a single-process run's."""
    single, parallel = tmp_path / "single", tmp_path / "ddp"
    proc = _cli(*_args(setup, single, stages=1, epochs=1))
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    run = subprocess.run(
        [*cmd, "-m", "trtprune.cli", "-v", *_args(setup, parallel, stages=1, epochs=1)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    digests = [line.split("final weights ")[1].strip() for line in run.stderr.splitlines() if "final weights" in line]
    assert len(digests) == 2 and digests[0] == digests[1], digests  # both ranks end with the same weights
    assert json.loads((parallel / "plan.json").read_text()) == json.loads((single / "plan.json").read_text())
    assert (parallel / "model.onnx").is_file() and (parallel / "report.json").is_file()


# detectors: the same resume and data parallel, with the detector's own losses on COCO-format data


@pytest.fixture(scope="module")
def detector(tmp_path_factory, ssdlite_table, canvas):
    """(folder, args of a detector prune to ``out``): the shared SSDlite table, the canvas set."""
    ckpt, table = ssdlite_table

    def args(out: Path, stages: int = 2) -> list[str]:
        return [
            "prune", "--lut", str(table), "--checkpoint", str(ckpt), "--budget-ratio", "0.9", "--stages", str(stages),
            "--finetune-epochs", "1", "--match-rounds", "1", "--match-calls", "1", "--data", "coco", "--data-root", str(canvas),
            "--out", str(out),
        ]  # fmt: skip

    return tmp_path_factory.mktemp("detector-resume"), args


@pytest.mark.slow
def test_a_killed_detector_prune_resumes_to_the_plan_of_an_uninterrupted_run(detector, tmp_path):
    root, args = detector
    whole = root / "whole"
    proc = _cli(*args(whole))
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    out = tmp_path / "run"
    before = _kill_when(
        args(out), out.with_name("run.partial") / "resume" / "journal.json", KILL_POINTS["between stages"]
    )
    proc = _cli(*args(out))
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    after = _entries(out / "journal.json")
    assert after[: len(before)] == before and len(after) == len(set(after))
    assert sorted(after) == sorted(_entries(whole / "journal.json"))
    report, base = (json.loads((d / "report.json").read_text()) for d in (out, whole))
    assert report["widths"] == base["widths"] and report["final_finetune"] == base["final_finetune"]
    assert report["task_metrics"]["pruned"] == base["task_metrics"]["pruned"]  # the same mAP: the same weights


@pytest.mark.slow
def test_torchrun_prunes_a_detector_in_data_parallel(detector, tmp_path):
    """Two CPU processes fine-tune the detector with its own losses; both end with the same weights and
    the plan is a single process's (one stage: decided on the unpruned weights)."""
    _, args = detector
    single, parallel = tmp_path / "single", tmp_path / "ddp"
    proc = _cli(*args(single, stages=1))
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519"]
    run = subprocess.run(
        [*cmd, "-m", "trtprune.cli", "-v", *args(parallel, stages=1)], capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
    digests = [line.split("final weights ")[1].strip() for line in run.stderr.splitlines() if "final weights" in line]
    assert len(digests) == 2 and digests[0] == digests[1], digests
    assert json.loads((parallel / "plan.json").read_text()) == json.loads((single / "plan.json").read_text())
    assert json.loads((parallel / "report.json").read_text())["task_metrics"]["metric"] == "map"
