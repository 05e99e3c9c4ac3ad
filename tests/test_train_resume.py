"""`trtprune train` killed after an epoch continues after it: the same weights as an uninterrupted
run, no epoch trained twice, other settings refused in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ARGS = ["train", "resnet20", "--data", "fashion-mnist", "--limit", "384", "--batch-size", "64", "--seed", "3"]


def _train(out: Path, *extra: str, epochs: int = 3, verbose: bool = True) -> subprocess.CompletedProcess:
    """The training command; ``verbose``: its log (epochs trained, resumption) on stderr."""
    cmd = [sys.executable, "-m", "trtprune.cli", *(["-v"] if verbose else []), *ARGS]
    cmd += ["--epochs", str(epochs), "--out", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from trtprune.checkpoint import load_checkpoint

    return load_checkpoint(path)["state_dict"]


def _kill_after_epoch(out: Path, epoch: int) -> None:
    """Start the 3-epoch run and SIGKILL it as soon as epoch ``epoch``'s snapshot is complete."""
    cmd = [sys.executable, "-m", "trtprune.cli", *ARGS, "--epochs", "3", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    marker = out.with_name(out.name + ".partial") / f"epoch{epoch}.pt"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the run ended before its snapshot appeared"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "base.pt"
    done = _train(out)
    assert done.returncode == 0, done.stderr
    assert not out.with_name("base.pt.partial").exists()
    return out


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(tmp_path, uninterrupted):
    out = tmp_path / "base.pt"
    _kill_after_epoch(out, 1)
    assert not out.exists()
    partial = out.with_name("base.pt.partial")
    assert {p.name for p in partial.glob("epoch*.pt")} == {"epoch1.pt", "epoch1-rank0.pt"}

    refused = _train(out, epochs=4, verbose=False)  # another schedule: the finished epoch cannot be reused
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode != 0 and len(lines) == 1, refused.stderr
    assert "epochs" in lines[0] and "--restart" in lines[0] and "Traceback" not in refused.stderr

    resumed = _train(out)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "after epoch 1" in resumed.stderr
    assert "epoch 1/3" not in resumed.stderr  # epoch 1 is not trained again
    assert not partial.exists()
    want, got = _weights(uninterrupted), _weights(out)
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)  # bit-identical on CPU


@pytest.mark.slow
def test_restart_discards_the_finished_epochs(tmp_path, uninterrupted):
    out = tmp_path / "base.pt"
    _kill_after_epoch(out, 1)
    again = _train(out, "--restart", epochs=4)  # other settings are fine once the old work is discarded
    assert again.returncode == 0, again.stderr
    assert "resuming" not in again.stderr and "epoch 1/4" in again.stderr
    assert not out.with_name("base.pt.partial").exists()
