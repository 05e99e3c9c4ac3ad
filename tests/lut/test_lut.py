"""Latency tables measured in ONNX Runtime: grid, staircase, resume after kill -9, fingerprints, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from trtprune.backends import BackendConfig
from trtprune.core.errors import PlanError, TrtpruneError
from trtprune.engine.timing import TimingConfig
from trtprune.lut.build import LutConfig, build_lut
from trtprune.lut.frames import Remeasure, frame_shift, opening, table_frames
from trtprune.lut.grid import grid_widths, linear, refine_candidates, staircase
from trtprune.lut.predict import LatencyModel
from trtprune.lut.settings import read_settings
from trtprune.lut.store import LutMismatch, LutStore, Probe
from trtprune.surgery.plan import Plan

SHAPE = "1x1x12x12"
FAST = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.2, warmup_ms=50, retries=0)
# resnet20 at 12x12: 12 groups of 16/32/64 channels; step 16 with small=4 keeps the table tiny
CONFIG = LutConfig(model="resnet20", input_shape=SHAPE, step=16, small=4, refine=False, pairs=True, timing=FAST)
CLI_ARGS = ["lut", "resnet20", "--input", SHAPE, "--step", "16", "--small", "4", "--no-refine", "--rounds", "5"]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lut") / "lut.db"
    build_lut(CONFIG, path)
    return path


def test_grid_is_hardware_aware():
    assert grid_widths(64, step=8) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert grid_widths(12, step=8) == list(range(1, 13))  # small groups: every count
    assert grid_widths(128, step=32, partitions=32) == [32, 64, 96, 128]


def test_staircase_not_interpolation():
    deltas = {8: -0.3, 16: -0.1, 24: 0.0}
    assert staircase(deltas, 9) == -0.1  # 9 channels cost what 16 do
    assert staircase(deltas, 16) == -0.1
    assert staircase(deltas, 3) == -0.3
    assert refine_candidates({8: -0.3, 16: -0.1, 24: 0.0}, threshold_ms=0.15) == [12]
    # a steady slope is not refined however steep; an edge is, where the neighbours are flat
    assert refine_candidates({8: -1.0, 16: -0.75, 24: -0.5, 32: -0.25, 40: 0.0}, threshold_ms=0.1) == []
    assert refine_candidates({8: -1.0, 16: -1.0, 24: -0.2, 32: -0.2, 40: 0.0}, threshold_ms=0.1) == [20, 36]


def test_table_rows_and_prediction(table):
    with LutStore(table) as store:
        meta, rows, pairs = store.require_meta(), store.rows(), store.pairs()
        model = LatencyModel(store)
    assert ("layer3.0.downsample.0", "layer3.1.conv1") in {(p.a, p.b) for p in pairs}  # joined by layer3.1.conv1/conv2
    assert len(model.pairs) == len(pairs) and all(p.ref_ms > 0 for p in pairs)
    assert meta.model == "resnet20" and meta.backend == "ort" and meta.input_shape == [1, 1, 12, 12]
    assert meta.environment["engine"] == "onnxruntime" and meta.environment["threads"] == 1
    widths = {(r.group, r.width) for r in rows}
    assert ("layer3.1.conv1", 16) in widths and ("layer3.1.conv1", 48) in widths
    assert all(r.median_ms > 0 and r.ref_ms > 0 for r in rows)
    row = next(r for r in rows if r.group == "layer3.1.conv1" and r.width == 16)
    plan = Plan("resnet20", (1, 1, 12, 12), {"layer3.1.conv1": list(range(16))})
    # network mode keeps each change as a share of the unpruned network measured beside it, times
    # its stage's scale (fitted to the probes)
    scale = model.scale("layer3.1.conv1")
    lo, hi = model.settings.build.scale_bounds
    assert lo <= scale <= hi and model.stage_of["layer3.1.conv1"] == "3x3"
    assert model.predict(plan) == pytest.approx(model.base_ms * (1 + scale * row.delta_ms / row.ref_ms))
    assert model.predict(Plan("resnet20", (1, 1, 12, 12), {})) == model.base_ms


def test_predict_cli_json(table, tmp_path, run_cli):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(Plan("resnet20", (1, 1, 12, 12), {"layer2.1.conv1": list(range(10))}).to_json()))
    code, out, err = run_cli("lut", "predict", table, "--plan", plan, "--json")
    assert code == 0, err
    assert json.loads(out)["predicted_ms"] > 0


def test_verify_cli_reports_errors_bias_and_regime(table, run_cli):
    code, out, err = run_cli("lut", "verify", table, "--samples", "2", "--once")
    assert code == 0, err
    assert "median error" in out and "bias" in out and "from the table's" in out
    code, out, err = run_cli("lut", "verify", table, "--samples", "2", "--once", "--json")
    assert code == 0, err
    figures = json.loads(out)
    assert {"bias_pct", "regime_shift_pct"} <= set(figures) and len(figures["rows"]) == 2


def test_table_refuses_another_model(table, tmp_path, run_cli):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(Plan("resnet32", (1, 1, 12, 12), {}).to_json()))
    code, _, err = run_cli("lut", "predict", table, "--plan", plan)
    assert code == 1 and "table for 'resnet20'" in err
    with LutStore(table) as store, pytest.raises(PlanError, match="not in the latency table"):
        LatencyModel(store).predict_widths({"nope": 3})


def test_fingerprint_mismatch_is_refused_with_reason(table, run_cli):
    code, _, err = run_cli(*CLI_ARGS, "--threads", "2", "--out", table)
    assert code == 2
    assert "it was measured with threads=1, this machine has threads=2" in err
    code, _, err = run_cli(*[a if a != "resnet20" else "resnet32" for a in CLI_ARGS], "--out", table)
    assert code == 2 and "built for model 'resnet20', not 'resnet32'" in err
    with LutStore(table) as store:
        meta = store.require_meta()
        meta = replace(meta, environment={**meta.environment, "processor": "another CPU"})
        with pytest.raises(LutMismatch, match="processor"):
            store.init_meta(meta)


def test_missing_backend_is_one_line(run_cli, tmp_path):
    code, _, err = run_cli(*CLI_ARGS, "--backend", "trt", "--device", "cuda", "--out", tmp_path / "t.db")
    assert code == 1
    assert "pip install 'trtprune[trt]'" in err
    assert not (tmp_path / "t.db").exists()


def test_kill_and_resume(tmp_path):
    out = tmp_path / "lut.db"
    cmd = [sys.executable, "-m", "trtprune.cli", *CLI_ARGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    before: dict = {}
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if out.exists():
            try:
                before = _rows(out)
            except sqlite3.Error:
                continue
            if len(before) >= 6:
                break
    assert proc.poll() is None, "the table finished before it could be killed; make it bigger"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _rows(out)
    assert len(before) >= 6
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    after = _rows(out)
    assert set(before) <= set(after)
    assert all(after[k] == v for k, v in before.items())  # kept, not re-measured
    assert f"{len(before)} already stored" in res.stdout or f"{len(before) - 1} already stored" in res.stdout
    assert "closing frame: the network moved" in res.stdout  # how far the frame moved during the build
    with LutStore(out) as store:
        fresh = {(r.group, r.width) for r in store.rows()}
    with LutStore(out) as store:
        assert store.base_ms() > 0
    assert len(fresh) == len(after)


def _rows(path: Path) -> dict:
    con = sqlite3.connect(path, timeout=10)
    try:
        return {(g, w): (m, t) for g, w, m, t in con.execute("SELECT grp, width, median_ms, measured_at FROM rows")}
    finally:
        con.close()


def test_block_mode_and_verify_and_plot(tmp_path):
    from trtprune.lut.plot import plot_lut
    from trtprune.lut.verify import verify

    path = tmp_path / "block.db"
    cfg = LutConfig(**{**CONFIG.__dict__, "mode": "block"})
    result = build_lut(cfg, path)
    assert result.measured > 0
    res = verify(str(path), samples=3, timing=FAST, again=True)
    assert len(res.rows) == 3 and [r.widths for r in res.again] == [r.widths for r in res.rows]  # measured twice
    figures = res.to_json()
    assert figures["floor_median_pct"] == pytest.approx(res.floor_pct[0]) and res.floor_pct[0] >= 0
    assert figures["cost"]["engines"] == result.engines_built and figures["cost"]["builds"] == 1
    assert figures["frame_shift"] == result.frame_shift.to_json() and result.frame_shift.blocks_max_pct > 0
    for r in res.rows:
        assert 0.3 * res.base_ms <= r.predicted_ms <= res.base_ms
        assert r.measured_ms > 0
        # the error is the one the row states: share predicted vs share measured beside the base
        share = r.measured_ms / r.base_now_ms
        assert r.error_pct == pytest.approx(100 * abs(r.predicted_ms / res.base_ms - share) / share)
    pngs = plot_lut(path, tmp_path / "plots")
    assert (tmp_path / "plots" / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pngs) == 13


def test_verify_statistics_summarise_the_rows():
    """Every summary verify reports is median_p90 of its rows' errors; rows round-trip through JSON,
    older rows' retired keys dropped, unknown ones refused."""
    from trtprune.lut.verify import ERROR_COLUMNS, VerifyResult, VerifyRow, median_p90, relative_error_pct

    rows = [VerifyRow({"g": 8}, 1.0 + i, 2.0, 4.0, 1.5 * i, 2.0 * i, 3.0 * i, 0.5 * i) for i in range(10)]
    figures = VerifyResult(rows, 1.0).to_json()
    for prefix, field in ERROR_COLUMNS.items():
        values = [getattr(r, field) for r in rows]
        assert (figures[f"{prefix}median_error_pct"], figures[f"{prefix}p90_error_pct"]) == median_p90(values)
    assert median_p90([3.0, 1.0, 2.0, 4.0]) == (2.5, pytest.approx(3.7))
    assert relative_error_pct(1.1, 1.0) == pytest.approx(10.0) and rows[0].share == 0.5
    # predicted shares 1 + i against measured 0.5 each: signed errors 100 (1 + i - 0.5) / 0.5, median at i = 4.5
    assert figures["bias_pct"] == pytest.approx(100 * (5.5 - 0.5) / 0.5)
    assert figures["regime_shift_pct"] == pytest.approx(300.0)  # every base timed at 4 ms against the table's 1 ms
    assert VerifyResult(rows, 1.0).regime_moved() and not VerifyResult(rows, 3.9).regime_moved()
    assert [VerifyRow.from_json(r) for r in figures["rows"]] == rows
    assert VerifyRow.from_json({**rows[1].to_json(), "no_stage_scales_error_pct": 9.0}) == rows[1]
    with pytest.raises(ValueError, match="bogus"):
        VerifyRow.from_json({**rows[1].to_json(), "bogus": 1})


def test_missing_table_is_a_user_error(tmp_path):
    with pytest.raises(TrtpruneError, match="not found"):
        LutStore(tmp_path / "none.db")


def test_backend_config_validates():
    with pytest.raises(TrtpruneError, match="unknown precision"):
        BackendConfig(precision="int4")


# block mode's dedupe ---------------------------------------------------------------------------

# step 8: every resnet20 group has widths to measure (16-channel groups too)
BLOCK = LutConfig(**{**CONFIG.__dict__, "mode": "block", "pairs": False, "step": 8})
STAGED = replace(BLOCK, stage_probes=(0.75, 0.5, 0.3))  # stage probes are opt-in since LutConfig format 3


class _StructuralRunner:
    """A stand-in engine whose latency is a function of its structure only (parameters and inputs).

    Two blocks that build the same engine cost the same here, as in a real engine; ``scale``
    changes every latency (to tell a re-measured row from a kept one); with ``aligned`` > 0 a
    conv whose output count is not a multiple of it costs extra (a staircase edge to refine).
    """

    def __init__(self, module, inputs, shape, scale: float, aligned: int = 0) -> None:
        import torch

        inputs = inputs if inputs is not None else (torch.zeros(shape),)
        size = sum(p.numel() for p in module.parameters()) + sum(x.numel() for x in inputs)
        if aligned:
            convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
            size += 20_000 * sum(1 for m in convs if m.out_channels % aligned)
        self.ms = scale * 1e-6 * (size + 1000)

    def timed(self, iterations: int) -> float:
        return self.ms * iterations

    def close(self) -> None:
        pass


@pytest.fixture
def structural(monkeypatch):
    """Engines replaced by :class:`_StructuralRunner`; the state counts engines and sets kill points."""
    from trtprune.lut import build

    state = {"engines": 0, "kill_at_engine": None, "kill_at_copy": None, "copies": 0, "scale": 1.0, "aligned": 0}

    def prepare(self, model, example_inputs=None):
        if state["kill_at_engine"] is not None and state["engines"] >= state["kill_at_engine"]:
            raise KeyboardInterrupt("killed")
        state["engines"] += 1
        self.engines += 1
        return _StructuralRunner(
            model, example_inputs, tuple(self.loaded.input_shape), state["scale"], state["aligned"]
        )

    copy = build.TableBuilder._copy

    def killable_copy(self, *args):
        if state["kill_at_copy"] is not None and state["copies"] >= state["kill_at_copy"]:
            raise KeyboardInterrupt("killed")
        state["copies"] += 1
        return copy(self, *args)

    monkeypatch.setattr(build.TableBuilder, "_prepare", prepare)
    monkeypatch.setattr(build.TableBuilder, "_copy", killable_copy)
    return state


def _write_probes(store: LutStore, probes: list[Probe]) -> None:
    """Replace the probes' measurements in both frames (the prediction reads their mean)."""
    store.add_base(None, probes)
    closing = store.closing()
    if closing is not None:
        store.add_closing(replace(closing, probes={p.name: p.share for p in probes}))


def _all_rows(path: Path) -> dict:
    with LutStore(path) as store:
        return {(r.group, r.width): r for r in store.rows()}


def test_identical_blocks_have_one_signature():
    import torch

    from trtprune.graph.groups import find_groups
    from trtprune.lut.block import extract_block, signature, trace
    from trtprune.models import build_model

    shape = (1, 1, 12, 12)
    model = build_model("resnet20", shape, pretrained=False)
    groups = find_groups(model, shape)
    traced = trace(model, torch.randn(*shape))
    sig = {g.name: signature(extract_block(*traced, g)) for g in groups.groups}
    assert sig["layer1.0.conv1"] == sig["layer1.1.conv1"] == sig["layer1.2.conv1"]
    assert sig["layer2.1.conv1"] == sig["layer2.2.conv1"] and sig["layer3.1.conv1"] == sig["layer3.2.conv1"]
    assert sig["layer2.0.conv1"] != sig["layer2.1.conv1"]  # the first block of a stage strides
    assert sig["layer2.1.conv1"] != sig["layer3.1.conv1"]  # other widths and shapes
    assert len(set(sig.values())) == 8


def test_dedupe_gives_the_rows_of_measuring_each(tmp_path, structural):
    each = build_lut(LutConfig(**{**BLOCK.__dict__, "dedupe": False}), tmp_path / "each.db")
    engines_each = structural["engines"]
    once = build_lut(BLOCK, tmp_path / "once.db")
    assert once.copied > 0 and each.copied == 0
    with LutStore(tmp_path / "each.db") as store:
        shared = 1 + len(store.probes())  # the base network and its probes, timed in both
    assert structural["engines"] - engines_each - shared < 0.75 * (engines_each - shared)  # fewer engines built
    a, b = _all_rows(tmp_path / "each.db"), _all_rows(tmp_path / "once.db")
    assert set(a) == set(b)
    for key, row in a.items():
        assert (b[key].median_ms, b[key].ref_ms) == pytest.approx((row.median_ms, row.ref_ms))
    copied = {r.group: r.copied_from for r in b.values() if r.copied_from}
    assert copied == {
        "layer1.1.conv1": "layer1.0.conv1",
        "layer1.2.conv1": "layer1.0.conv1",
        "layer2.2.conv1": "layer2.1.conv1",
        "layer3.2.conv1": "layer3.1.conv1",
    }
    assert once.copied == sum(1 for r in b.values() if r.copied_from)
    with LutStore(tmp_path / "once.db") as store:
        probes = store.probes()
        whole = [p for p in probes if p.name.startswith("probe-")]  # timed beside the network
        assert [p.name for p in whole] == ["probe-30", "probe-50", "probe-75"]
        assert 0 < whole[0].share < whole[1].share < whole[2].share < 1
        refs = store.block_refs()  # every group's unpruned block, timed beside the network
        assert set(refs) == set(store.require_meta().widths) and refs["layer1.1.conv1"] == refs["layer1.0.conv1"]
        assert {r["copied_from"] for r in store.export_json()["rows"]} == {None, *copied.values()}


@pytest.mark.parametrize("kill", [("engine", 30), ("copy", 0), ("copy", 2), ("engine", 40)])
def test_resume_with_dedupe_neither_loses_nor_remeasures(tmp_path, structural, kill):
    path = tmp_path / "lut.db"
    structural[f"kill_at_{kill[0]}"] = kill[1]  # killed mid-table: while measuring, or before a copy
    with pytest.raises(KeyboardInterrupt):
        build_lut(BLOCK, path)
    before = _all_rows(path)
    assert before
    structural.update(kill_at_engine=None, kill_at_copy=None, scale=2.0)  # a re-measured row would double
    result = build_lut(BLOCK, path)
    after = _all_rows(path)
    assert {k: after[k] for k in before} == before  # kept as stored, not re-measured
    assert result.measured + result.copied == len(after) - len(before)
    structural["scale"] = 1.0
    build_lut(BLOCK, tmp_path / "fresh.db")
    assert set(after) == set(_all_rows(tmp_path / "fresh.db"))  # nothing lost
    for row in after.values():
        if row.copied_from:  # a copy holds exactly its source's numbers, whichever run measured them
            src = after[(row.copied_from, row.width)]
            assert (row.median_ms, row.ref_ms) == (src.median_ms, src.ref_ms)


def test_joined_correction_only_adds_back(tmp_path, structural):
    build_lut(BLOCK, tmp_path / "t.db")
    with LutStore(tmp_path / "t.db") as store:
        singles, joined = (
            LatencyModel(store, interactions=False, stage_scales=True),
            LatencyModel(store, stage_scales=True),
        )
        assert joined.joins and 0.0 <= joined.join_weight <= 1.0
        half = {g: max(1, w // 2) for g, w in joined.meta.widths.items()}
        assert singles.interaction_ms(half) == 0.0
        assert singles.stage_scales == joined.stage_scales  # the separable costs keep the stage scales
        assert singles.predict_widths(half) <= joined.predict_widths(half) <= joined.base_ms  # never below the sum
        default = LatencyModel(store)  # a table with designed probes fits its stage scales by default
        assert default.stage_scales == joined.stage_scales and default.join_weight == joined.join_weight
        unscaled = LatencyModel(store, stage_scales=False)
        assert all(unscaled.scale(g) == 1.0 for g in unscaled.meta.widths) and unscaled.stage_scales == {}
    fixture = Path(__file__).parents[1] / "fixtures" / "table-format2-block.db"
    with LutStore(shutil.copy(fixture, tmp_path / "old.db")) as store:
        old = LatencyModel(store)  # a table from before the designed probes: every group counts as measured
        assert old.stage_scales == {} and all(old.scale(g) == 1.0 for g in old.meta.widths)


def test_every_stage_has_probes_that_cut_only_its_groups(tmp_path, structural):
    build_lut(STAGED, tmp_path / "t.db")
    with LutStore(tmp_path / "t.db") as store:
        settings = read_settings(store.require_meta())
        stored = {p.name for p in store.probes()}
        full = store.require_meta().widths
    resolutions = settings.resolutions
    assert set(resolutions.values()) == {"12x12", "6x6", "3x3"}  # resnet20's three stages at 12x12
    assert resolutions["conv1"] == "12x12" and resolutions["layer3.2.conv1"] == "3x3"
    stage_probes = {n: w for n, w in settings.probe_widths.items() if n.startswith("stage-")}
    assert set(stage_probes) == {f"stage-{r}-{pct}" for r in ("12x12", "6x6", "3x3") for pct in (30, 50, 75)}
    assert set(settings.probe_widths) == stored  # every probe timed beside the network and stored
    for name, widths in stage_probes.items():
        cut = {g for g, w in widths.items() if w < full[g]}
        assert cut and cut == {g for g in cut if resolutions[g] == name.split("-")[1]}


def test_stage_scales_and_join_weight_are_fitted_to_the_probes(tmp_path, structural):
    """Probes that show each stage saving k_s times what its blocks' rows add up to (and 0.3 of the
    joined-layer over-count) give back k_s and 0.3; a plan cutting one stage predicts k_s x its rows."""
    build_lut(STAGED, tmp_path / "t.db")
    scales = {"12x12": 1.25, "6x6": 0.9, "3x3": 1.1}
    with LutStore(tmp_path / "t.db") as store:
        model = LatencyModel(store, stage_scales=True)
        base, stage_of = model.base_ms, model.stage_of
        probes = []
        for name, w in model.settings.probe_widths.items():
            change = sum(scales[stage_of[g]] * model._raw(g, v) for g, v in w.items()) + 0.3 * model._joined_ms(w)
            probes.append(Probe(name, base + change, base))
        _write_probes(store, probes)
        fitted = LatencyModel(store, stage_scales=True)
    # the probes are reproduced, each within 5% of its change; the scales move from 1 to the truth
    # (up to the prior that holds them at 1 and what they trade with the weight)
    for probe in probes:
        assert fitted.predict_widths(fitted.settings.probe_widths[probe.name]) - base == pytest.approx(
            probe.ms - base, rel=0.05
        )
    assert fitted.stage_scales == pytest.approx(scales, abs=0.1) and 0.0 < fitted.join_weight < 1.0
    assert fitted.stage_scales["12x12"] > 1.1 and fitted.stage_scales["6x6"] < 0.95
    half = {g: max(1, w // 2) if stage_of[g] == "6x6" else w for g, w in fitted.meta.widths.items()}
    singles = sum(fitted._raw(g, w) for g, w in half.items())
    k = fitted.stage_scales["6x6"]
    assert fitted.predict_widths(half) == pytest.approx(
        base + k * singles + fitted.join_weight * fitted._joined_ms(half)
    )
    assert sum(ms for _, ms in fitted.terms(half)) == pytest.approx(fitted.predict_widths(half) - base)


def test_a_table_without_stage_probes_gets_them_on_resume_and_keeps_its_rows(tmp_path, structural):
    path = tmp_path / "t.db"
    build_lut(replace(BLOCK, stage_probes=()), path)  # as tables were built before the stage probes
    with LutStore(path) as store:
        assert not any(p.name.startswith("stage-") for p in store.probes())
    before = _all_rows(path)
    structural["scale"] = 2.0  # a re-measured row would double
    result = build_lut(STAGED, path)
    assert result.measured == 0 and _all_rows(path) == before
    with LutStore(path) as store:
        assert {p.name for p in store.probes()} == set(read_settings(store.require_meta()).probe_widths)


def test_an_older_trtprune_refuses_a_table_with_stage_scales(tmp_path, structural, monkeypatch):
    """A prediction rule without the stage scales would mispredict a format-3 table: it must refuse it."""
    from trtprune.core.records import RecordError
    from trtprune.lut.settings import TableSettings

    build_lut(BLOCK, tmp_path / "t.db")
    monkeypatch.setattr(TableSettings, "FORMAT", 2)  # the reader of trtprune before the stage scales
    with LutStore(tmp_path / "t.db") as store, pytest.raises(RecordError, match="format 3.*up to format 2: upgrade"):
        LatencyModel(store)


@pytest.mark.parametrize("weight", [0.0, 0.35, 0.8])
def test_join_weight_is_fitted_to_the_probes(tmp_path, structural, weight):
    build_lut(BLOCK, tmp_path / "t.db")
    with LutStore(tmp_path / "t.db") as store:
        model = LatencyModel(store)
        probes = store.require_meta().config["probe_widths"]
        base = model.base_ms
        # probes cutting every stage that show ``weight`` of the over-count, give or take 5% of it (the
        # weight is fitted to them; the stage probes, which fit the stage scales, show it exactly)
        noise = {name: 0.05 if i % 2 else -0.05 for i, name in enumerate(n for n in probes if n.startswith("probe-"))}
        _write_probes(
            store,
            [
                Probe(name, base + model._singles(w) + (weight + noise.get(name, 0.0)) * model._joined_ms(w), base)
                for name, w in probes.items()
            ],
        )
        assert LatencyModel(store).join_weight == pytest.approx(weight, abs=0.1)


def test_refinement_finds_edges_and_resumes_to_the_same_widths(tmp_path, structural):
    """Refinement splits the intervals where the staircase jumps; a build killed in a refinement
    pass and resumed ends with exactly the widths of an uninterrupted build."""
    refined = LutConfig(**{**BLOCK.__dict__, "refine": True, "step": 16, "small": 4})
    structural["aligned"] = 16  # off-multiple output counts cost extra: an edge beside every multiple of 16
    whole = build_lut(refined, tmp_path / "whole.db")
    rows = _all_rows(tmp_path / "whole.db")
    measured = {k for k, r in rows.items() if not r.copied_from}  # copies are stored after every pass
    grid = {(g, w) for g, w in measured if w % 16 == 0}
    assert len(measured) > len(grid)  # refinement added widths
    engines = structural["engines"]
    structural.update(engines=0, kill_at_engine=engines - 3)  # killed late: in a refinement pass
    with pytest.raises(KeyboardInterrupt):
        build_lut(refined, tmp_path / "killed.db")
    partial = set(_all_rows(tmp_path / "killed.db"))
    assert grid <= partial < measured  # killed in a refinement pass
    structural["kill_at_engine"] = None
    build_lut(refined, tmp_path / "killed.db")
    assert set(_all_rows(tmp_path / "killed.db")) == set(rows)
    assert whole.measured + whole.copied == len(rows) - 1  # every row but the base


def test_a_sparse_grid_is_read_linearly_and_an_older_table_as_a_staircase(tmp_path):
    assert grid_widths(2048, 8, 16, 1, 512, points=6) == [8, 344, 680, 1024, 1368, 1704, 2048]
    assert grid_widths(64, 8, points=6) == [8, 24, 32, 40, 56, 64]
    assert grid_widths(64, 8, points=20) == grid_widths(64, 8)  # never more than every step
    assert grid_widths(12, 8, points=6) == list(range(1, 13))  # small groups: every count
    deltas = {8: -1.0, 32: -0.5, 64: 0.0}
    assert linear(deltas, 16, 8) == pytest.approx(-1.0 + 0.5 * 8 / 24)
    assert linear(deltas, 13, 8) == linear(deltas, 16, 8)  # 13 channels run as 16
    assert linear(deltas, 3, 8) == -1.0 and linear(deltas, 32, 8) == -0.5 and linear(deltas, 63, 8) == 0.0
    old = LutConfig(model="resnet20").to_json()
    for key in ("points", "between", "designs"):
        old.pop(key)
    read = LutConfig.from_json({**old, "format": 2})
    assert (read.points, read.between, read.designs) == (None, "staircase", 0)  # what format 2 meant
    assert LutConfig.from_json(old).points == 6  # a format-3 record without the key takes the default
    fixture = Path(__file__).parents[1] / "fixtures" / "table-format2-block.db"
    path = Path(shutil.copy(fixture, tmp_path / "old.db"))
    with LutStore(path) as store:
        model = LatencyModel(store)
    assert model.settings.build.between == "staircase" and model.settings.build.points is None
    group = "layer1.0.conv1"
    assert model._raw(group, 9) == staircase(model.curves[group], 9)


@pytest.mark.parametrize("reader", [2, 3, 4])
def test_an_older_trtprune_refuses_a_newer_table(tmp_path, structural, monkeypatch, reader):
    """A staircase reader (format 2) would mispredict a table read linearly, a reader without the
    closing frame (format 3) would read its shares from one frame, and one of format 4 would fit its
    scales and weight within narrower bounds: each must refuse it."""
    from trtprune.core.records import RecordError

    build_lut(BLOCK, tmp_path / "t.db")
    monkeypatch.setattr(LutConfig, "FORMAT", reader)
    with (
        LutStore(tmp_path / "t.db") as store,
        pytest.raises(RecordError, match=f"format 5.*up to format {reader}: upgrade"),
    ):
        LatencyModel(store)


def test_designed_probes_are_the_same_uneven_plans_on_every_build(tmp_path, structural):
    designs = []
    for name in ("a.db", "b.db"):
        build_lut(BLOCK, tmp_path / name)
        with LutStore(tmp_path / name) as store:
            widths = read_settings(store.require_meta()).probe_widths
            assert set(widths) == {p.name for p in store.probes()}  # every probe timed and stored
            full = store.require_meta().widths
        designs.append({n: w for n, w in widths.items() if n.startswith("design-")})
    assert designs[0] == designs[1] and len(designs[0]) == BLOCK.designs
    ratios = []
    for plan in designs[0].values():
        assert all(w == full[g] or w % BLOCK.step == 0 or w < BLOCK.step for g, w in plan.items())  # allowed widths
        shares = [w / full[g] for g, w in plan.items()]
        assert max(shares) - min(shares) > 0.1  # groups cut unevenly, not one uniform cut
        ratios.append(sum(shares) / len(shares))
    assert ratios[0] < 0.5 < ratios[-1]  # deep cuts to light ones


def test_the_join_weight_is_recovered_exactly_from_noiseless_designed_probes(tmp_path, structural):
    build_lut(replace(BLOCK, probes=()), tmp_path / "t.db")  # designed probes only
    with LutStore(tmp_path / "t.db") as store:
        model = LatencyModel(store, stage_scales=False)  # the truth: every stage as its rows say (scales 1)
        probes = read_settings(store.require_meta()).probe_widths
        assert probes and all(n.startswith("design-") for n in probes)
        base = model.base_ms
        assert all(model._joined_ms(w) > 0 for w in probes.values())
        _write_probes(
            store, [Probe(n, base + model._singles(w) + 0.42 * model._joined_ms(w), base) for n, w in probes.items()]
        )
        fitted = LatencyModel(store)  # the stage scales and the weight, fitted together
        assert fitted.join_weight == pytest.approx(0.42, abs=1e-6)
        assert fitted.stage_scales and all(k == pytest.approx(1.0, abs=1e-6) for k in fitted.stage_scales.values())
        assert LatencyModel(store, stage_scales=False).join_weight == pytest.approx(0.42, abs=1e-9)


def test_a_tables_cost_adds_up_every_invocation(tmp_path, structural):
    whole = build_lut(BLOCK, tmp_path / "whole.db")
    with LutStore(tmp_path / "whole.db") as store:
        assert store.cost() | {"wall_s": 0} == {"engines": whole.engines_built, "rows": whole.measured,
                                                "copied": whole.copied, "wall_s": 0, "builds": 1}  # fmt: skip
    structural.update(engines=0, kill_at_engine=20)
    with pytest.raises(KeyboardInterrupt):
        build_lut(BLOCK, tmp_path / "killed.db")
    structural["kill_at_engine"] = None
    build_lut(BLOCK, tmp_path / "killed.db")
    with LutStore(tmp_path / "killed.db") as store:
        cost = store.cost()
    assert cost["builds"] == 2 and cost["engines"] == structural["engines"]
    assert cost["rows"] + cost["copied"] == whole.measured + whole.copied  # no row measured twice


# the closing frame ------------------------------------------------------------------------------


def test_the_closing_frame_reuses_the_opening_engines_and_resumes_alone(tmp_path, structural, monkeypatch):
    """An uninterrupted build times its network and probes again with the engines that opened it (no
    engine built twice); a build killed before its closing frame resumes with that frame alone, and
    the frame it measures is how far the machine moved (here everything twice as slow: +100% for the
    network, the shares unmoved)."""
    from trtprune.lut import build

    whole = build_lut(BLOCK, tmp_path / "whole.db")
    with LutStore(tmp_path / "whole.db") as store:
        assert store.closing() is not None and frame_shift(store).base_pct == pytest.approx(0.0)
        assert set(store.closing().probes) == {p.name for p in store.probes()}
        assert set(store.closing().blocks) == set(store.block_refs())
    structural["engines"] = 0
    build_lut(replace(BLOCK, closing=False), tmp_path / "open.db")
    assert whole.engines_built == structural["engines"]  # the closing frame built no engine

    def killed(self):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as patch:
        patch.setattr(build.TableBuilder, "close_frame", killed)
        with pytest.raises(KeyboardInterrupt):
            build_lut(BLOCK, tmp_path / "t.db")
    rows = _all_rows(tmp_path / "t.db")
    with LutStore(tmp_path / "t.db") as store:
        assert store.closing() is None and frame_shift(store) is None
    structural.update(scale=2.0, engines=0)
    resumed = build_lut(BLOCK, tmp_path / "t.db")  # a resumed build is kept however far it moved
    assert resumed.measured == 0 and resumed.copied == 0 and _all_rows(tmp_path / "t.db") == rows
    assert structural["engines"] == 1 + len(BLOCK.probes) + BLOCK.designs + len(whole_blocks(tmp_path / "t.db"))
    moved = resumed.frame_shift
    assert moved.base_pct == pytest.approx(100.0) and moved.blocks_max_pct == pytest.approx(0.0, abs=1e-9)
    assert moved.probes_max_pct == pytest.approx(0.0, abs=1e-9)
    assert build_lut(BLOCK, tmp_path / "t.db").measured == 0  # finished: nothing left to time


def _moving_frames(monkeypatch, moves: int) -> None:
    """The first ``moves`` closing frames find the network 20% slower than the build's opening frame."""
    from trtprune.lut import build

    frame, calls = build.FrameTimer.frame, []

    def moved(self):
        calls.append(frame(self))
        return replace(calls[-1], base_ms=calls[-1].base_ms * (1.2 if len(calls) <= moves else 1.0))

    monkeypatch.setattr(build.FrameTimer, "frame", moved)


@pytest.mark.parametrize("moves", [1, 2])
def test_a_build_whose_frame_moved_is_measured_again(tmp_path, structural, monkeypatch, moves):
    """A network 20% slower at the closing frame than at the opening one (over the 5% allowed): the
    rows and frames are discarded, how far they moved kept, and the table measured again from a new
    opening frame with the same frame engines (rows' engines built again), when asked. Measured again
    once at most here: a second move is kept, with its shift."""
    whole = build_lut(BLOCK, tmp_path / "whole.db")
    frame_engines = 1 + len(BLOCK.probes) + BLOCK.designs + len(whole_blocks(tmp_path / "whole.db"))
    _moving_frames(monkeypatch, moves)
    structural["engines"] = 0
    result = build_lut(BLOCK, tmp_path / "t.db", remeasure=Remeasure(attempts=1))
    assert [round(m.base_pct, 6) for m in result.discarded] == [20.0]
    assert result.frame_shift.base_pct == pytest.approx(20.0 if moves == 2 else 0.0)
    assert result.measured == 2 * whole.measured and _all_rows(tmp_path / "t.db") == _all_rows(tmp_path / "whole.db")
    assert structural["engines"] == 2 * whole.engines_built - frame_engines
    with LutStore(tmp_path / "t.db") as store:
        assert [m.base_pct for m in store.discarded()] == [m.base_pct for m in result.discarded]
        assert store.cost()["rows"] == 2 * whole.measured  # what the table cost, both measurements
    assert build_lut(BLOCK, tmp_path / "t.db", remeasure=Remeasure(attempts=1)).measured == 0  # finished


def test_a_moved_build_killed_after_its_discard_resumes_to_one_new_measurement(tmp_path, structural, monkeypatch):
    from trtprune.lut import store as lut_store

    whole = build_lut(BLOCK, tmp_path / "whole.db")
    discard = lut_store.LutStore.discard

    def killed(self, moved):
        discard(self, moved)
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as patch:
        _moving_frames(patch, 1)
        patch.setattr(lut_store.LutStore, "discard", killed)
        with pytest.raises(KeyboardInterrupt):
            build_lut(BLOCK, tmp_path / "t.db", remeasure=Remeasure(attempts=1))
    with LutStore(tmp_path / "t.db") as store:  # discarded in one transaction: nothing measured is left
        assert store.rows() == [] and store.probes() == [] and store.closing() is None
        assert len(store.discarded()) == 1
    resumed = build_lut(BLOCK, tmp_path / "t.db", remeasure=Remeasure(attempts=1))
    assert resumed.measured == whole.measured and _all_rows(tmp_path / "t.db") == _all_rows(tmp_path / "whole.db")
    assert len(resumed.discarded) == 1 and resumed.frame_shift.base_pct == pytest.approx(0.0)


def test_remeasuring_is_asked_for(tmp_path, structural, monkeypatch):
    _moving_frames(monkeypatch, 1)
    result = build_lut(BLOCK, tmp_path / "t.db")  # by default a moved build is kept, its shift reported
    assert result.discarded == [] and result.frame_shift.base_pct == pytest.approx(20.0)


def whole_blocks(path: Path) -> set[float]:
    """The distinct unpruned blocks of a table (one engine each)."""
    with LutStore(path) as store:
        return {b for b, _ in store.block_refs().values()}


def test_shares_are_read_as_the_mean_of_both_frames(tmp_path, structural):
    """A closing frame whose blocks and probes show other shares moves each term to the mean of the two
    frames; without it (a table of format 3) the opening frame's shares alone are read."""
    build_lut(BLOCK, tmp_path / "t.db")
    with LutStore(tmp_path / "t.db") as store:
        first = opening(store)
        store.add_closing(replace(first, blocks={g: 2.0 * s for g, s in first.blocks.items()}))
        both = LatencyModel(store, stage_scales=False)
        store.db.execute("DELETE FROM meta WHERE key='closing'")
        store.db.commit()
        one = LatencyModel(store, stage_scales=False)
    for group, curve in one.curves.items():
        for width, change in curve.items():
            assert both.curves[group][width] == pytest.approx(1.5 * change)  # the mean of x1 and x2
    probes = {n: 0.9 * s for n, s in first.probes.items()}
    with LutStore(tmp_path / "t.db") as store:
        store.add_closing(replace(first, probes=probes))
        mean = {n: (first.probes[n] + probes[n]) / 2 for n in probes}
        _write_probes(store, [Probe(n, s * first.base_ms, first.base_ms) for n, s in mean.items()])
        alone = LatencyModel(store)  # the same mean, written in both frames
        store.add_closing(replace(first, probes=probes))
        store.add_base(None, [Probe(n, s * first.base_ms, first.base_ms) for n, s in first.probes.items()])
        mixed = LatencyModel(store)  # the two frames apart: their mean is fitted
    assert mixed.join_weight == pytest.approx(alone.join_weight)
    assert mixed.stage_scales == pytest.approx(alone.stage_scales)


def test_a_rebuilt_table_forgets_its_closing_frame_and_cost(tmp_path, structural):
    build_lut(BLOCK, tmp_path / "t.db")
    with LutStore(tmp_path / "t.db") as store:
        store.init_meta(replace(store.require_meta(), input_shape=[1, 1, 16, 16]), force=True)
        assert store.closing() is None and store.cost()["builds"] == 0


def test_a_table_of_format_4_predicts_as_the_trtprune_that_wrote_it(tmp_path):
    """tests/fixtures/table-format4-block.db (4805867: a closing frame, scales in [1/2, 2] and the weight
    in [0, 1]) predicts as 4805867 did."""
    import shutil

    fixture = Path(__file__).parents[1] / "fixtures" / "table-format4-block.db"
    with LutStore(shutil.copy(fixture, tmp_path / "old.db")) as store:
        assert store.closing() is not None and len(table_frames(store)) == 2
        model = LatencyModel(store)
    build = model.settings.build
    assert (build.scale_bounds, build.weight_bounds) == ((0.5, 2.0), (0.0, 1.0))
    full = model.meta.widths
    assert model.predict_widths({g: max(1, w // 2) for g, w in full.items()}) == pytest.approx(0.34668040479345796)
    assert model.predict_widths({g: 3 * w // 4 for g, w in full.items()}) == pytest.approx(0.4981443876215421)


@pytest.mark.parametrize("fmt", [4, 5])
def test_a_stage_scale_is_fitted_within_the_tables_bounds(tmp_path, structural, fmt):
    """Probes showing the 12x12 stage 3x as dear in the whole network as its blocks alone: a table of
    today's format fits past 2 (bounds [1/4, 4]; the prior and the joined-layer weight share the
    rest); one of format 4 stops at its bound, 2."""
    config = BLOCK if fmt == 5 else replace(BLOCK, scale_bounds=(0.5, 2.0), weight_bounds=(0.0, 1.0))
    build_lut(config, tmp_path / "t.db")
    with LutStore(tmp_path / "t.db") as store:
        model = LatencyModel(store)
        probes = store.require_meta().config["probe_widths"]
        base = model.base_ms

        def change(w):
            return sum(
                (3.0 if model.stage_of.get(g) == "12x12" else 1.0) * model._raw(g, v)
                for g, v in w.items()
                if v != model.meta.widths[g]
            )

        _write_probes(store, [Probe(name, base + change(w), base) for name, w in probes.items()])
        fitted = LatencyModel(store)
    k = fitted.stage_scales["12x12"]
    assert k == pytest.approx(2.0) if fmt == 4 else 2.1 < k <= 4.0


def test_a_table_of_format_3_predicts_as_the_trtprune_that_wrote_it(tmp_path):
    """tests/fixtures/table-format3-block.db (8c39b1b: no closing frame) reads its opening frame alone:
    the predictions 8c39b1b made from it, to the last digit but rounding."""
    import shutil

    fixture = Path(__file__).parents[1] / "fixtures" / "table-format3-block.db"
    with LutStore(shutil.copy(fixture, tmp_path / "old.db")) as store:
        assert store.closing() is None and len(table_frames(store)) == 1
        model = LatencyModel(store)
    full = model.meta.widths
    assert model.settings.build.closing is False and model.settings.build.designs == 2
    assert model.predict_widths({g: max(1, w // 2) for g, w in full.items()}) == pytest.approx(0.28493383244919746)
    assert model.predict_widths({g: 3 * w // 4 for g, w in full.items()}) == pytest.approx(0.4019498708614069)
