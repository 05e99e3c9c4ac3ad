"""OpenVINO through the product: a block table measured in it, a prune that meets its budget there,
its IR, and the refusals (package missing, a table from another OpenVINO version)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trtprune.engine.timing import TimingConfig
from trtprune.train.config import FINETUNE

FAST = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, warmup_ms=50, retries=0)
SHAPE = (1, 1, 28, 28)


@pytest.fixture(scope="module")
def ov_table(tmp_path_factory):
    """(checkpoint, table): an untrained resnet20 for Fashion-MNIST and a small block table measured
    for it in OpenVINO."""
    from trtprune.backends import BackendConfig
    from trtprune.lut.build import LutConfig, build_lut
    from trtprune.models import build_model
    from trtprune.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("ov-table")
    ckpt = root / "base.pt"
    model = build_model("resnet20", "1x1x28x28")
    save_checkpoint(ckpt, model, model_name="resnet20", input_shape=SHAPE, num_classes=10, preprocessing=None)
    table = root / "lut.db"
    config = LutConfig(
        model=None,
        checkpoint=str(ckpt),
        backend="openvino",
        backend_config=BackendConfig(threads=1),
        mode="block",
        step=16,
        small=4,
        refine=False,
        timing=FAST,
    )
    build_lut(config, table)
    return ckpt, table


def _one_line(code: int, err: str) -> None:
    assert code == 2, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trtprune: error:") and "Traceback" not in err, err


def _lut_args(ckpt: Path) -> list:
    return ["lut", "--checkpoint", ckpt, "--backend", "openvino", "--mode", "block", "--step", "16", "--small", "4"]


def test_openvino_table_records_its_engine(ov_table):
    import openvino as ov

    from trtprune.lut.predict import LatencyModel
    from trtprune.lut.store import LutStore

    _, table = ov_table
    with LutStore(table) as store:
        meta = store.require_meta()
        model = LatencyModel(store)
        rows = [r for r in store.rows() if r.group != "__base__"]
    assert meta.backend == "openvino" and meta.mode == "block" and meta.input_shape == list(SHAPE)
    env = meta.environment
    assert env["engine"] == "openvino" and env["version"] == ov.get_version() and env["threads"] == 1
    assert env["precision"] == "fp32" and env["processor"]
    assert rows and all(r.median_ms > 0 and r.ref_ms > 0 for r in rows)
    assert model.base_ms > 0


def test_table_from_another_openvino_version_is_refused(ov_table, tmp_path, run_cli):
    ckpt, table = ov_table
    copy = Path(shutil.copy(table, tmp_path / "lut.db"))
    with sqlite3.connect(copy) as db:
        meta = json.loads(db.execute("SELECT value FROM meta WHERE key='meta'").fetchone()[0])
        meta["environment"]["version"] = "2025.1.0-older"
        db.execute("UPDATE meta SET value=? WHERE key='meta'", (json.dumps(meta),))
    code, _, err = run_cli(*_lut_args(ckpt), "--no-refine", "--rounds", "5", "--out", copy)
    _one_line(code, err)
    assert "version='2025.1.0-older'" in err and "--force" in err


def test_missing_openvino_is_one_line(ov_table, tmp_path, run_cli, monkeypatch):
    ckpt, _ = ov_table
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    out = tmp_path / "t.db"
    code, _, err = run_cli(*_lut_args(ckpt), "--out", out)
    _one_line(code, err)
    assert "pip install openvino" in err and not out.exists()
    code, _, err = run_cli("bench", ckpt, "--backend", "openvino")
    _one_line(code, err)
    assert "pip install openvino" in err


def test_openvino_refuses_fp16_tables_in_one_line(ov_table, tmp_path, run_cli):
    ckpt, _ = ov_table
    out = tmp_path / "t.db"
    code, _, err = run_cli(*_lut_args(ckpt), "--precision", "fp16", "--out", out)
    _one_line(code, err)
    assert "runs fp32 only" in err and not out.exists()


def test_verify_in_openvino(ov_table, run_cli):
    _, table = ov_table
    code, out, err = run_cli("lut", "verify", table, "--samples", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["rows"]) == 2 and all(r["measured_ms"] > 0 for r in result["rows"])


@pytest.mark.slow
def test_prune_meets_its_budget_in_openvino(ov_table, tmp_path, run_cli, reachable_ratio):
    import openvino as ov

    from trtprune.backends import BackendConfig, get_backend
    from trtprune.prune import PruneConfig, run_prune

    ckpt, table = ov_table
    out = tmp_path / "run"
    result = run_prune(
        PruneConfig(
            lut=str(table),
            budget_ratio=reachable_ratio(table, ckpt, least=0.7),
            stages=1,
            finetune=replace(FINETUNE, limit_train=512),
            # the default match policy (3 calls), as users run it: a test asserting the budget on one call's
            # measurement fails on a noisy machine (stop 36's CI: matched at 0.70, model.onnx measured at 0.767)
            out=str(out),
        )
    )
    report = json.loads((out / "report.json").read_text())
    assert report["backend"] == "openvino" and report["engine_files"]["engine"] == "model.xml"
    assert report["measured"]["environment"]["engine"] == "openvino"
    assert report["meets_budget"], report["measured_share"]  # measured in OpenVINO beside the base
    assert report["params"] < report["base_params"] and result.measured_share == pytest.approx(report["measured_share"])
    # the IR is the pruned model: it computes what model.onnx computes in ONNX Runtime
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    compiled = ov.Core().compile_model(out / "model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with get_backend("ort").prepare(out / "model.onnx", SHAPE, BackendConfig()) as runner:
        np.testing.assert_allclose(compiled(x)[0], runner.infer(x), rtol=1e-4, atol=1e-4)
    code, stdout, err = run_cli("bench", out / "model.onnx", "--backend", "openvino", "--json")
    assert code == 0, err
    bench = json.loads(stdout)
    assert bench["timing"]["median_ms"] > 0 and bench["environment"]["engine"] == "openvino"


def test_bench_measures_onnx_and_ir_in_openvino(ov_table, tmp_path, run_cli):
    from trtprune.backends import BackendConfig, get_backend

    ckpt, _ = ov_table
    onnx_path = tmp_path / "model.onnx"
    code, _, err = run_cli("export", "--checkpoint", ckpt, "--out", onnx_path)
    assert code == 0, err
    get_backend("openvino").deploy(onnx_path, tmp_path, BackendConfig())
    for path in (onnx_path, tmp_path / "model.xml"):
        code, out, err = run_cli("bench", path, "--backend", "openvino", "--json")
        assert code == 0, err
        result = json.loads(out)
        assert result["timing"]["median_ms"] > 0 and result["environment"]["engine"] == "openvino"
