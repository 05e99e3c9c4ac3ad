"""`trtprune prune`: errors before any run directory exists, and the whole pipeline on a small run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from trtprune.engine.timing import TimingConfig
from trtprune.train.config import FINETUNE

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
    from trtprune.engine.evaluation import evaluate_onnx
    from trtprune.prune import PruneConfig, run_prune
    from trtprune.surgery.plan import Plan

    root, ckpt, table = setup
    result = run_prune(
        PruneConfig(
            lut=str(table),
            budget_ratio=0.8,
            stages=2,
            finetune=replace(FINETUNE, limit_train=512),
            remeasure=remeasure,
            # the default match policy (3 calls), as users run it: a test asserting the budget on one call's
            # measurement fails on a noisy machine (stop 36's CI: matched at 0.70, model.onnx measured at 0.767)
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


def test_scoring_batches_do_not_depend_on_what_the_process_drew_before(setup, reachable_ratio):
    """The batches Taylor scores read are the same after other draws from the global random stream
    (a resumed run makes fewer of them), and drawing them leaves that stream as it was."""
    import torch

    from trtprune.prune import PruneConfig
    from trtprune.prune.inputs import load_inputs

    _, _, table = setup
    ratio = reachable_ratio(table)  # not 0.7: this small table's floor is above it at times
    run = load_inputs(PruneConfig(lut=str(table), budget_ratio=ratio, finetune=replace(FINETUNE, limit_train=512)))
    first = list(run.batches(2))
    torch.rand(1000)  # what an export or an augmentation elsewhere would draw
    state = torch.get_rng_state()
    second = list(run.batches(2))
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second, strict=True))


def test_decision_keeps_top_scored_prefixes_within_budget(setup):
    import numpy as np

    from trtprune.decide.decision import decide
    from trtprune.decide.importance import score_groups
    from trtprune.graph.groups import find_groups
    from trtprune.lut.grid import allowed_widths
    from trtprune.lut.predict import LatencyModel
    from trtprune.lut.store import LutStore
    from trtprune.models.loading import load_model

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


def _widths(names, options, choice):
    return {n: int(ks[i]) for n, ks, i in zip(names, options, choice, strict=True)}


def _value(values, choice):
    return sum(float(v[i]) for v, i in zip(values, choice, strict=True))


class _Full:
    """A full prediction given as a function of the widths (the solver's JoinedCost)."""

    def __init__(self, f):
        self.joined_ms = f

    def joined_change(self, widths, group, width):
        return self.joined_ms({**widths, group: width}) - self.joined_ms(widths)


def _brute_force(values, options, joined, budget):
    """The most valuable choice whose ``joined`` prediction is within ``budget`` (None if none is)."""
    import itertools

    best = None
    for choice in itertools.product(*(range(len(v)) for v in values)):
        if joined(_widths([f"g{i}" for i in range(len(values))], options, choice)) <= budget + 1e-12:
            value = _value(values, choice)
            if best is None or value > best[0] + 1e-12:
                best = (value, list(choice))
    return best


def test_joined_solver_prices_cuts_that_save_less_together():
    """Two groups whose cuts are cheap alone but save only one block's worth together (a layout
    switch counted once): the separable knapsack takes both and misses the budget in the full
    prediction; the relinearised one reaches the brute-force optimum within it."""
    import numpy as np

    from trtprune.decide.decision import _relinearised
    from trtprune.decide.solver import group_knapsack

    options = [np.array([2, 8, 16]), np.array([2, 8, 16]), np.array([4, 8])]
    values = [np.array([0.85, 0.9, 1.0]), np.array([0.85, 0.9, 1.0]), np.array([0.2, 1.0])]
    single = [{16: 0.0, 8: -0.1, 2: -0.3}, {16: 0.0, 8: -0.1, 2: -0.3}, {8: 0.0, 4: -0.3}]
    base = 1.0

    def joined(w):  # groups 0 and 1 both under 8: together they save 0.3, not 0.6
        saving = sum(single[i][w[f"g{i}"]] for i in range(3))
        if w["g0"] < 8 and w["g1"] < 8:
            saving += 0.3
        return base + saving

    budget = 0.45
    costs = [np.array([single[i][int(k)] for k in ks]) for i, ks in enumerate(options)]
    separable = group_knapsack(values, costs, budget - base)
    names = ["g0", "g1", "g2"]
    assert joined(_widths(names, options, separable)) > budget  # the separable choice misses it once joined
    picked = _relinearised(names, values, options, separable, _Full(joined), budget)
    assert joined(_widths(names, options, picked)) <= budget
    assert _value(values, picked) == pytest.approx(_brute_force(values, options, joined, budget)[0])


def test_joined_solver_within_budget_whenever_a_choice_is():
    """Random instances with a strong over-count between every pair of cut groups: the relinearised
    result is within the budget whenever any choice is (brute force), worth at least the separable
    choice when that one is within, and the separable choice misses the budget in some of them."""
    import numpy as np

    from trtprune.core.errors import InfeasibleBudget
    from trtprune.decide.decision import _relinearised
    from trtprune.decide.solver import group_knapsack

    rng = np.random.default_rng(0)
    names = [f"g{i}" for i in range(4)]
    separable_over = 0
    for _ in range(40):
        options = [np.array([1, 2, 3, 4]) for _ in names]
        values = [np.sort(rng.random(4)).cumsum() for _ in names]
        single = [np.concatenate([-np.sort(rng.random(3))[::-1].cumsum()[::-1], [0.0]]) for _ in names]
        k = rng.random((4, 4)) * 2.0

        def joined(w, single=single, k=k):
            cut = [1 - w[n] / 4 for n in names]
            over = sum(k[a, b] * cut[a] * cut[b] for a in range(4) for b in range(a + 1, 4))
            return 3.0 + sum(single[i][w[n] - 1] for i, n in enumerate(names)) + over

        budget = 3.0 + float(rng.uniform(-2.0, -0.5))
        try:
            separable = group_knapsack(values, single, budget - 3.0)
        except InfeasibleBudget:
            continue
        picked = _relinearised(names, values, options, separable, _Full(joined), budget)
        ms, sep_ms = joined(_widths(names, options, picked)), joined(_widths(names, options, separable))
        if _brute_force(values, options, joined, budget) is not None:
            assert ms <= budget
        if sep_ms <= budget:
            assert _value(values, picked) >= _value(values, separable) - 1e-12
        separable_over += sep_ms > budget
    assert separable_over >= 3


def test_allowed_widths():
    from trtprune.graph.groups import ChannelGroup
    from trtprune.lut.grid import allowed_widths

    g = ChannelGroup("g", 64, (), (), (), 1)
    assert allowed_widths(g, 64, 16).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 32, 48, 64]
    assert allowed_widths(g, 40, 16).tolist()[-3:] == [16, 32, 40]
    blocks = ChannelGroup("b", 128, (), (), (), 32)
    assert allowed_widths(blocks, 128, 8).tolist() == [32, 64, 96, 128]
