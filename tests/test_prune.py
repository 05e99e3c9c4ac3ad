"""`trtprune prune`: errors before any run directory exists, and the whole pipeline on a small run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtprune.timing import TimingConfig

FAST = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, warmup_ms=50, retries=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, r20_table):
    """This module's folder, and the shared resnet20 checkpoint and table (conftest)."""
    return tmp_path_factory.mktemp("prune"), *r20_table


def _one_line(code: int, err: str) -> None:
    assert code != 0
    assert len([x for x in err.splitlines() if x.strip()]) == 1 and "Traceback" not in err


def test_budget_below_the_smallest_latency(setup, run_cli):
    root, _, table = setup
    out = root / "run-low"
    code, _, err = run_cli("prune", "--lut", table, "--budget-ms", "0.00001", "--out", out)
    _one_line(code, err)
    assert "below the smallest latency" in err
    assert not out.exists()


def test_budget_above_base(setup, run_cli):
    root, _, table = setup
    code, _, err = run_cli("prune", "--lut", table, "--budget-ratio", "1.2", "--out", root / "run-high")
    _one_line(code, err)
    assert "not below the base latency" in err and not (root / "run-high").exists()


def test_table_for_another_model(setup, run_cli):
    root, _, table = setup
    code, _, err = run_cli("prune", "resnet32", "--lut", table, "--budget-ratio", "0.5", "--out", root / "run-other")
    _one_line(code, err)
    assert "built for 'resnet20', not 'resnet32'" in err and not (root / "run-other").exists()


def test_missing_data(setup, run_cli):
    root, _, table = setup
    code, _, err = run_cli(
        "prune", "--lut", table, "--budget-ratio", "0.8", "--data-root", root / "nodata", "--out", root / "run-nodata"
    )
    _one_line(code, err)
    assert "dataset-fashion-mnist" in err and not (root / "run-nodata").exists()


@pytest.mark.slow
@pytest.mark.parametrize("remeasure", [False, True])
def test_pipeline_end_to_end(setup, remeasure):
    from trtprune.data import get_dataset
    from trtprune.evaluation import evaluate_onnx
    from trtprune.plan import Plan
    from trtprune.prune import PruneConfig, run_prune

    root, ckpt, table = setup
    result = run_prune(
        PruneConfig(
            lut=str(table),
            budget_ratio=0.8,
            stages=2,
            finetune_epochs=1,
            limit_train=512,
            remeasure=remeasure,
            out=str(root / f"run-{remeasure}"),
        )
    )
    run = Path(result.run_dir)
    assert (run / "tables" / "stage2.db").exists() == remeasure
    files = {p.name for p in Path(run).iterdir()}
    assert {
        "plan.json",
        "model.pt",
        "model.onnx",
        "model.ort.onnx",
        "report.json",
        "report.md",
        "widths.png",
        "stages.png",
    } <= files
    report = json.loads((run / "report.json").read_text())
    assert len(report["stages"]) == 2
    assert report["preprocessing"]["mean"] == [0.286]
    # the report's top-1 is that of model.onnx in ONNX Runtime on the test split
    assert report["top1"] == evaluate_onnx(run / "model.onnx", get_dataset("fashion-mnist", "test"))
    plan = Plan.load(run / "plan.json")
    assert plan.model == "resnet20" and plan.groups
    assert report["params"] < report["base_params"]
    assert report["measured"]["pruned"]["median_ms"] > 0
    assert report["meets_budget"], report["measured_share"]  # model.onnx measures within the budget
    assert result.measured_share == pytest.approx(report["measured_share"]) and result.run_dir == str(run)


def test_decision_keeps_top_scored_prefixes_within_budget(setup):
    import numpy as np

    from trtprune.decision import allowed_widths, decide
    from trtprune.groups import find_groups
    from trtprune.importance import score_groups
    from trtprune.loading import load_model
    from trtprune.lut.predict import LatencyModel
    from trtprune.lut.store import LutStore

    _, ckpt, table = setup
    loaded = load_model(None, checkpoint=ckpt)
    groups = find_groups(loaded.model, loaded.input_shape)
    with LutStore(table) as store:
        latency = LatencyModel(store)
    scores = score_groups(groups, "sp-lamp")
    smallest = latency.base_ms + sum(
        min(latency.delta_ms(g.name, int(k)) for k in allowed_widths(g, g.channels, 8)) for g in groups.groups
    )
    budget = smallest + 0.4 * (latency.base_ms - smallest)
    d = decide(groups, scores, latency, budget, "resnet20", round_to=8)
    assert latency.base_ms + sum(latency.delta_ms(g, w) for g, w in d.widths.items()) <= budget + 1e-9
    for g in groups.groups:
        w = d.widths[g.name]
        assert w % 8 == 0 or w < 8
        kept = d.plan.groups.get(g.name, list(range(g.channels)))
        assert len(kept) == w
        s = scores[g.name]
        dropped = sorted(set(range(g.channels)) - set(kept))
        if dropped:
            assert s[kept].min() >= s[dropped].max()  # a prefix of the descending ranking
            assert np.argmax(s) in kept  # the SP-LAMP survivor (score 1) is always kept


def test_allowed_widths():
    from trtprune.decision import allowed_widths
    from trtprune.groups import ChannelGroup

    g = ChannelGroup("g", 64, (), (), (), 1)
    assert allowed_widths(g, 64, 16).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 32, 48, 64]
    assert allowed_widths(g, 40, 16).tolist()[-3:] == [16, 32, 40]
    blocks = ChannelGroup("b", 128, (), (), (), 32)
    assert allowed_widths(blocks, 128, 8).tolist() == [32, 64, 96, 128]
