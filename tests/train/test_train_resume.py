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
# a detector trained with its own losses on a small canvas set (written by the ``detector_args`` fixture)
DETECTOR = ["train", "ssdlite320_mobilenet_v3_large", "--data", "coco", "--input", "1x3x96x96", "--batch-size", "4",
            "--seed", "3"]  # fmt: skip


CLI = [sys.executable, "-m", "trtprune.cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "trtprune.cli"]


def _train(
    out: Path, *extra: str, epochs: int = 3, verbose: bool = True, launcher: list[str] = CLI, args: list[str] = ARGS
) -> subprocess.CompletedProcess:
    """The training command; ``verbose``: its log (epochs trained, resumption) on stderr."""
    cmd = [*launcher, *(["-v"] if verbose else []), *args, "--epochs", str(epochs), "--out", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from trtprune.models.checkpoint import load_checkpoint

    return load_checkpoint(path)["state_dict"]


def _kill_after_epoch(out: Path, epoch: int, launcher: list[str] = CLI, args: list[str] = ARGS) -> None:
    """Start the 3-epoch run and SIGKILL it (every process) as soon as epoch ``epoch``'s snapshot is complete."""
    cmd = [*launcher, *args, "--epochs", "3", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = out.with_name(out.name + ".partial") / f"epoch{epoch}.pt"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    _kill_all(str(out))  # torchrun starts each worker in its own session: kill by command line
    proc.wait()
    assert marker.exists(), "the run ended before its snapshot appeared"


def _kill_all(needle: str) -> None:
    """SIGKILL every process whose command line contains ``needle``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # gone already


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "base.pt"
    done = _train(out)
    assert done.returncode == 0, done.stderr
    assert not out.with_name("base.pt.partial").exists()
    return out


@pytest.mark.slow
def test_a_killed_detector_training_resumes_to_the_same_weights(tmp_path, detector_args):
    whole, out = tmp_path / "whole.pt", tmp_path / "killed.pt"
    done = _train(whole, args=detector_args)
    assert done.returncode == 0, done.stderr
    _kill_after_epoch(out, 1, args=detector_args)
    assert not out.exists()
    resumed = _train(out, args=detector_args)
    assert resumed.returncode == 0, resumed.stderr
    assert "after epoch 1" in resumed.stderr and "epoch 1/3" not in resumed.stderr
    want, got = _weights(whole), _weights(out)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


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
def test_damaged_snapshot_and_restart(tmp_path):
    out = tmp_path / "base.pt"
    _kill_after_epoch(out, 1)
    (out.with_name("base.pt.partial") / "epoch1.pt").write_bytes(b"not a torch file")
    damaged = _train(out, verbose=False)
    lines = [line for line in damaged.stderr.splitlines() if line.strip()]
    assert damaged.returncode != 0 and len(lines) == 1, damaged.stderr
    assert "epoch1.pt of the unfinished training is unreadable" in lines[0] and "--restart" in lines[0]
    again = _train(out, "--restart", epochs=4)  # other settings are fine once the old work is discarded
    assert again.returncode == 0, again.stderr
    assert "resuming" not in again.stderr and "epoch 1/4" in again.stderr
    assert not out.with_name("base.pt.partial").exists()


@pytest.fixture(scope="module")
def detector_args(tmp_path_factory) -> list[str]:
    from trtprune.data.canvas import CanvasConfig, write_canvas_set

    root = tmp_path_factory.mktemp("canvas")
    write_canvas_set(root, CanvasConfig(train=16, val=4, size=96, seed=0))
    return [*DETECTOR, "--data-root", str(root)]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classifier", "detector"])
def test_torchrun_training_resumes_to_the_same_weights(tmp_path, task, request):
    """Two ranks (gloo on CPU): each resumes from rank 0's weights and its own random state; a
    detector (its own losses, COCO data) as a classifier."""
    args = request.getfixturevalue("detector_args") if task == "detector" else ARGS
    whole, out = tmp_path / "whole.pt", tmp_path / "killed.pt"
    done = _train(whole, launcher=TORCHRUN, args=args)
    assert done.returncode == 0, done.stderr
    _kill_after_epoch(out, 1, launcher=TORCHRUN, args=args)
    assert not out.exists()
    partial = out.with_name("killed.pt.partial")
    assert {p.name for p in partial.glob("epoch*.pt")} == {"epoch1.pt", "epoch1-rank0.pt", "epoch1-rank1.pt"}
    resumed = _train(out, launcher=TORCHRUN, args=args)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("after epoch 1") == 2, resumed.stderr  # both ranks
    assert "epoch 1/3" not in resumed.stderr and not partial.exists()
    want, got = _weights(whole), _weights(out)
    assert all(torch.equal(want[k], got[k]) for k in want)
