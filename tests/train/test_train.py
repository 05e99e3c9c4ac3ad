"""Tests of the training engine (single process and torchrun DDP) and of checkpoints."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from trtprune.core.errors import CheckpointError, DataError, UsageError
from trtprune.data import get_dataset, get_spec
from trtprune.models import build_model
from trtprune.models.checkpoint import load_checkpoint, load_weights, save_checkpoint
from trtprune.train.config import TrainConfig
from trtprune.train.ddp import is_main_process
from trtprune.train.job import TrainJob
from trtprune.train.loop import TrainResult, evaluate, train

REPO = Path(__file__).resolve().parents[2]
SHAPE = "1x1x28x28"


def _fashion(split: str, limit: int):
    try:
        return get_dataset("fashion-mnist", split, limit=limit)
    except DataError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def fmnist() -> tuple:
    return _fashion("train", 2000), _fashion("test", 500)


def _states_equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# --- training ------------------------------------------------------------------------------------------------


def test_one_epoch_on_fashion_mnist_beats_chance(fmnist) -> None:
    train_set, test_set = fmnist
    model = build_model("resnet20", SHAPE)
    before = evaluate(model, test_set)
    calls: list[dict] = []
    result = train(model, train_set, test_set, TrainConfig(epochs=1, lr=0.1, batch_size=64), progress=calls.append)

    assert isinstance(result, TrainResult) and result.epochs == 1
    assert result.top1 > 0.4 and result.top1 > before + 0.2, (before, result)
    assert result.top1 == pytest.approx(evaluate(model, test_set))  # the caller's model holds the trained weights
    assert not model.training
    assert math.isfinite(result.train_loss) and result.train_loss < math.log(10)
    assert [row["epoch"] for row in result.history] == [1]
    assert result.history[0]["lr"] == pytest.approx(0.0, abs=1e-9)  # the cosine schedule spans every step
    steps = math.ceil(2000 / 64)
    assert [c.step for c in calls] == list(range(1, steps + 1))
    assert all(c.epoch == 1 and c.steps == steps and math.isfinite(c.loss) for c in calls)
    assert TrainResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_same_seed_gives_identical_weights(fmnist) -> None:
    augmented = get_dataset("fashion-mnist", "train", augment=True, limit=64)
    config = TrainConfig(epochs=2, batch_size=16, seed=3, limit_test=32)
    models = [build_model("resnet20", SHAPE) for _ in range(3)]  # build_model reseeds the global RNG
    rng_before = torch.get_rng_state()
    runs = []
    for seed, model in zip((3, 3, 4), models, strict=True):
        result = train(model, augmented, fmnist[1], replace(config, seed=seed))
        runs.append((model.state_dict(), result))
    assert _states_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert not _states_equal(runs[0][0], runs[2][0])  # the seed does matter (shuffling, augmentation)
    assert torch.equal(torch.get_rng_state(), rng_before)  # train() leaves the caller's RNG alone


def test_mask_hook_runs_after_every_step(fmnist) -> None:
    model = build_model("resnet20", SHAPE)
    seen: list[int] = []

    def zero_first_filter(m: torch.nn.Module) -> None:
        seen.append(1)
        with torch.no_grad():
            m.conv1.weight[0].zero_()

    train(
        model,
        fmnist[0],
        fmnist[1],
        TrainConfig(batch_size=32, limit_train=96, limit_test=32),
        mask_hook=zero_first_filter,
    )
    assert len(seen) == 3
    assert torch.count_nonzero(model.conv1.weight[0]) == 0
    assert torch.count_nonzero(model.conv1.weight[1]) > 0


def test_train_config_json_and_validation() -> None:
    config = TrainConfig(epochs=3, lr=0.01, limit_train=10)
    assert TrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    with pytest.raises(UsageError, match="unknown training option"):
        TrainConfig.from_json({"epochs": 1, "lrr": 0.1})
    with pytest.raises(UsageError, match="epochs"):
        TrainConfig(epochs=-1)
    with pytest.raises(
        UsageError, match="epochs"
    ):  # a recipe may train nothing (a prune run's); a training job may not
        TrainJob(model="resnet20", data="fashion-mnist", out=Path("m.pt"), config=TrainConfig(epochs=0))
    with pytest.raises(UsageError, match="lr"):
        TrainConfig(lr=0.0)


def test_is_main_process_without_distributed(monkeypatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()


_DDP_SCRIPT = """
import hashlib, json, os, sys

import torch
import torch.distributed as dist

from trtprune.data import get_dataset
from trtprune.models import build_model
from trtprune.train.ddp import is_main_process
from trtprune.train.job import TrainJob
from trtprune.train.loop import train
from trtprune.train.config import TrainConfig

out = sys.argv[1]
rank = int(os.environ["RANK"])
model = build_model("resnet20", "1x1x28x28")
with torch.no_grad():  # give every rank different weights: DDP must start from rank 0's
    for p in model.parameters():
        p.add_(rank * 0.01)
steps = []
config = TrainConfig(batch_size=16, lr=0.05, limit_train=128, limit_test=64)
result = train(model, get_dataset("fashion-mnist", "train"), get_dataset("fashion-mnist", "test"), config,
               progress=steps.append)
digest = hashlib.sha256()
for key, value in model.state_dict().items():
    digest.update(key.encode())
    digest.update(value.detach().cpu().contiguous().numpy().tobytes())
report = {"rank": rank, "top1": result.top1, "loss": result.train_loss, "sha": digest.hexdigest(),
          "steps": len(steps), "group_left_up": dist.is_initialized(), "ddp": type(model).__name__}
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump(report, f)
if is_main_process():
    with open(os.path.join(out, "main.json"), "w") as f:
        json.dump({"rank": rank}, f)
"""


def test_ddp_two_cpu_processes_stay_in_sync(fmnist, tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(_DDP_SCRIPT))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["top1"] == r1["top1"] and r0["loss"] == r1["loss"]
    assert r0["sha"] == r1["sha"]  # weights and BatchNorm buffers identical on both replicas
    assert r0["steps"] == r1["steps"] == 128 // 2 // 16  # the train set is sharded, not duplicated
    assert r0["ddp"] == "CifarResNet"  # the caller gets the plain module back
    assert not r0["group_left_up"]  # train() tears down only the process group it created
    assert json.loads((tmp_path / "main.json").read_text()) == {"rank": 0}


# --- checkpoints ---------------------------------------------------------------------------------------------


def _save(path: Path, model: torch.nn.Module, name: str = "resnet20", plan: dict | None = None) -> None:
    save_checkpoint(
        path,
        model,
        model_name=name,
        input_shape=(1, 1, 28, 28),
        num_classes=10,
        preprocessing=get_spec("fashion-mnist").preprocessing.to_json(),
        plan=plan,
        metrics={"top1": 0.91},
    )


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = build_model("resnet20", SHAPE)
    with torch.no_grad():
        model.fc.bias.add_(1.0)  # differ from a fresh build
    path = tmp_path / "sub" / "model.pt"
    _save(path, model, plan={"groups": {"layer1": 8}})
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary left behind

    ckpt = load_checkpoint(path)
    assert ckpt["format"] == 1 and ckpt["model"] == "resnet20" and ckpt["num_classes"] == 10
    assert ckpt["input_shape"] == [1, 1, 28, 28]
    assert ckpt["preprocessing"] == get_spec("fashion-mnist").preprocessing.to_json()
    assert ckpt["plan"] == {"groups": {"layer1": 8}} and ckpt["metrics"] == {"top1": 0.91}
    assert _states_equal(ckpt["state_dict"], model.state_dict())

    fresh = build_model("resnet20", SHAPE)
    load_weights(fresh, ckpt, path)
    assert _states_equal(fresh.state_dict(), model.state_dict())


def test_bare_state_dict_is_accepted(tmp_path: Path) -> None:
    model = build_model("resnet20", SHAPE)
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == 1 and ckpt["model"] is None and ckpt["plan"] is None
    assert _states_equal(ckpt["state_dict"], model.state_dict())


def test_missing_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "not found" in msg and "trtprune train MODEL --out" in msg


@pytest.mark.parametrize("kind", ["garbage", "list", "module", "dict"])
def test_corrupt_checkpoint(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.pt"
    if kind == "garbage":
        path.write_bytes(os.urandom(64) + b"\x00garbage")
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "module":
        torch.save(torch.nn.Linear(2, 2), path)  # a pickled module is refused (weights_only)
    else:
        torch.save({"format": 1, "model": "resnet20"}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "is corrupt or not a trtprune/PyTorch checkpoint" in msg


def test_checkpoint_for_another_model(tmp_path: Path) -> None:
    path = tmp_path / "r20.pt"
    _save(path, build_model("resnet20", SHAPE))
    with pytest.raises(CheckpointError) as info:
        load_weights(build_model("resnet32", SHAPE), load_checkpoint(path), path)
    msg = str(info.value)
    assert "\n" not in msg and "was made for model resnet20" in msg and "first mismatching key" in msg

    bare = tmp_path / "bare.pt"
    torch.save(build_model("resnet20", "1x3x32x32").state_dict(), bare)
    with pytest.raises(CheckpointError, match=r"does not fit this model: first mismatching key conv1.weight has shape"):
        load_weights(build_model("resnet20", SHAPE), load_checkpoint(bare), bare)


def test_a_run_resumed_from_an_epoch_snapshot_is_bit_identical(fmnist) -> None:
    import io

    augmented = get_dataset("fashion-mnist", "train", augment=True, limit=96)
    config = TrainConfig(epochs=3, batch_size=16, seed=5, limit_test=32)
    whole = build_model("resnet20", SHAPE)
    expected = train(whole, augmented, fmnist[1], config)
    snaps = []

    def killed_after_one_epoch(snap):
        snaps.append(snap)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(build_model("resnet20", SHAPE), augmented, fmnist[1], config, on_epoch=killed_after_one_epoch)
    buf = io.BytesIO()
    torch.save(snaps[-1], buf)  # what a journal stores, read back as it would be
    snap = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    resumed = build_model("resnet20", SHAPE)
    calls = []
    result = train(resumed, augmented, fmnist[1], config, resume=snap, on_epoch=lambda s: calls.append(s["epoch"]))
    assert calls == [2, 3]  # epoch 1 is not run again
    assert _states_equal(resumed.state_dict(), whole.state_dict())
    assert result == expected


def test_distillation_mixes_the_label_loss_with_the_teachers_logits() -> None:
    import copy

    import torch.nn.functional as F

    from trtprune.train.loop import Distillation

    model = build_model("resnet20", SHAPE).eval()
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 1, 9])
    with torch.no_grad():
        logits = model(x)
    ce = F.cross_entropy(logits, y)
    assert float(Distillation(copy.deepcopy(model), weight=0.0).loss(logits, x, y)) == pytest.approx(float(ce))
    # its own teacher: the KL term is zero, so only (1 - w) of the label loss remains
    assert Distillation(copy.deepcopy(model), weight=0.25).loss(logits, x, y) == pytest.approx(
        0.75 * float(ce), rel=1e-5
    )
    other = build_model("resnet56", SHAPE).eval()
    assert float(Distillation(other, weight=1.0).loss(logits, x, y)) > 0
    with pytest.raises(UsageError, match="temperature"):
        Distillation(model, temperature=0.0)
