"""Bad input: one line on stderr, non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trtprune.surgery.plan import Plan


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    """An untrained resnet20 checkpoint for Fashion-MNIST shapes."""
    from trtprune.models import build_model
    from trtprune.models.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ck") / "base.pt"
    model = build_model("resnet20", "1x1x28x28")
    save_checkpoint(path, model, model_name="resnet20", input_shape=(1, 1, 28, 28), num_classes=10, preprocessing=None)
    return path


def _one_line_error(code: int, err: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("trtprune: error:")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["export", "no_such_net"], "unknown model 'no_such_net'"),
        (["export", "resnet20", "--input", "1x3x32"], "malformed input shape"),
        (["export", "resnet20", "--input", "axbxcxd"], "malformed input shape"),
        (["export", "--checkpoint", "missing.pt"], "not found"),
        (["train", "resnet20", "--data", "fashion-mnist", "--data-root", "/nonexistent"], "dataset-fashion-mnist"),
        (["train", "resnet20", "--data", "cifar10"], "cifar-10-batches-py"),
        (["train", "resnet20", "--data", "mnist-ish"], "unknown dataset"),
        (["export", "resnet20", "--keep-ratio", "1.5"], "keep ratio"),
    ],
)
def test_bad_input_gives_one_line(run_cli, tmp_path, args, needle):
    out = tmp_path / "out.file"
    code, _, err = run_cli(*args, "--out", out)
    _one_line_error(code, err)
    assert needle in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left behind either


def test_groups_missing_checkpoint(run_cli):
    code, _, err = run_cli("groups", "resnet20", "--checkpoint", "missing.pt")
    _one_line_error(code, err)
    assert "missing.pt not found" in err


def test_corrupt_checkpoint(run_cli, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    code, _, err = run_cli("export", "--checkpoint", bad, "--out", tmp_path / "m.onnx")
    _one_line_error(code, err)
    assert "corrupt" in err
    assert not (tmp_path / "m.onnx").exists()


def test_plan_for_another_model(run_cli, tmp_path, base_ckpt):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(Plan("resnet56", (1, 1, 28, 28), {"conv1": [0]}).to_json()))
    code, _, err = run_cli("export", "--checkpoint", base_ckpt, "--plan", plan, "--out", tmp_path / "m.onnx")
    _one_line_error(code, err)
    assert "plan is for model 'resnet56', not 'resnet20'" in err
    assert not (tmp_path / "m.onnx").exists()


def test_checkpoint_of_another_model(run_cli, tmp_path, base_ckpt):
    code, _, err = run_cli("export", "resnet56", "--checkpoint", base_ckpt, "--out", tmp_path / "m.onnx")
    _one_line_error(code, err)
    assert "holds model 'resnet20'" in err


def test_export_plan_roundtrip_and_metadata(run_cli, tmp_path, base_ckpt):
    from trtprune.engine.export import read_metadata

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(Plan("resnet20", (1, 1, 28, 28), {"conv1": [1, 5, 9]}).to_json()))
    code, out, err = run_cli("export", "--checkpoint", base_ckpt, "--plan", plan, "--out", tmp_path / "m.onnx")
    assert code == 0, err
    meta = read_metadata(tmp_path / "m.onnx")
    assert json.loads(meta["trtprune.plan"])["groups"] == {"conv1": [1, 5, 9]}
    assert meta["trtprune.model"] == "resnet20"


def test_console_script_help_and_error_exit_code(tmp_path):
    for args in ([], ["models"], ["groups"], ["train"], ["export"], ["eval"]):
        res = subprocess.run([sys.executable, "-m", "trtprune.cli", *args, "--help"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert "Usage" in res.stdout
    res = subprocess.run([sys.executable, "-m", "trtprune.cli", "groups", "nope"], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "did you mean" not in res.stdout


def test_cli_imports_no_heavy_dependency():
    code = "import sys, trtprune, trtprune.cli; heavy = {'torch', 'onnx', 'onnxruntime', 'tensorrt', 'openvino'} & set(sys.modules); assert not heavy, heavy"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (["--data", "cifar10"], "--data cifar10 gives 3x32x32 images"),
        (["--data", "imagefolder", "--data-root", "tests/assets/imagenet"], "--data imagefolder gives 3x28x28 images"),
    ],
)
def test_prune_data_of_another_shape_than_the_table(run_cli, tmp_path, data, needle):
    """A table measured at 1x1x28x28 and data of another shape: refused before any data is read
    or any run directory exists (it used to fail inside the first fine-tune with a traceback)."""
    from pathlib import Path

    table = Path(__file__).parent / "fixtures" / "table-format1.db"
    out = tmp_path / "run"
    code, _, err = run_cli("prune", "--lut", table, "--budget-ratio", "0.7", *data, "--out", out)
    lines = [line for line in err.splitlines() if line.strip() and "ignoring 'channels'" not in line]
    _one_line_error(code, "\n".join(lines))
    assert needle in err and "trtprune lut resnet20 --input 1x" in err
    assert not out.exists() and not Path(f"{out}.partial").exists()
