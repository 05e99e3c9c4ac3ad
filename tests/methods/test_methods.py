"""`--method`: each method's distinctive step, the shared matching loop and `trtprune compare`."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trtprune.core.errors import InfeasibleBudget
from trtprune.decide.matching import MatchPolicy
from trtprune.engine.measurement import Measurement
from trtprune.engine.timing import TimingConfig
from trtprune.lut.build import LutConfig, build_lut
from trtprune.methods.base import method_names
from trtprune.prune import PruneConfig
from trtprune.train.config import FINETUNE

FAST = TimingConfig(warmup=2, rounds=5, min_sample_ms=0.5, warmup_ms=50, retries=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An untrained resnet20 for Fashion-MNIST, its groups and a small measured table."""
    from trtprune.graph.groups import find_groups
    from trtprune.lut.predict import LatencyModel
    from trtprune.lut.store import LutStore
    from trtprune.models import build_model
    from trtprune.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("methods")
    ckpt = root / "base.pt"
    model = build_model("resnet20", "1x1x28x28")
    save_checkpoint(ckpt, model, model_name="resnet20", input_shape=(1, 1, 28, 28), num_classes=10, preprocessing=None)
    table = root / "lut.db"
    build_lut(
        LutConfig(model=None, checkpoint=str(ckpt), step=16, small=4, refine=False, pairs=False, timing=FAST), table
    )
    with LutStore(table) as store:
        latency = LatencyModel(store, interactions=False)
    return root, ckpt, table, model, find_groups(model, (1, 1, 28, 28)), latency


def _state(setup, **kw):
    from trtprune.methods import StageState

    _, _, _, model, groups, latency = setup
    args = dict(
        model=model,
        groups=groups,
        latency=latency,
        current={g.name: g.channels for g in groups.groups},
        round_to=16,
        model_name="resnet20",
        stage=1,
        stages=1,
        seed=0,
    )
    return StageState(**{**args, **kw})


def test_unknown_method_is_one_line(run_cli, setup, tmp_path):
    _, _, table, *_ = setup
    code, _, err = run_cli(
        "prune", "--lut", table, "--method", "halpp", "--budget-ratio", "0.5", "--out", tmp_path / "r"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown method 'halpp'" in err
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli("compare", "--lut", table, "--budgets", "0.5,x", "--out", tmp_path / "c")
    assert code == 2 and "--budgets" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args,says",
    [
        (["--importance", "sp-lamb"], "unknown importance 'sp-lamb'; choose one of: l1, l2, lamp, random, sp-lamp,"),
        (["--method", "halp", "--importance", "sp-lamp"], "method 'halp' does not take option 'importance'; it takes: batches, table, entry_se"),
        (["--method", "uniform", "--option", "batches=3"], "method 'uniform' does not take option 'batches'; it takes none"),
        (["--option", "batches"], "write options as NAME:KEY=VALUE"),
        (["--option", "solver=exact"], "unknown solver 'exact'; choose one of: joined, separable"),
        (["--method", "modelopt-fastnas", "--option", "unknown=1"], "method 'modelopt-fastnas' does not take option 'unknown'; it takes: divisor, score_batches, calib_batches"),
    ],
)  # fmt: skip
def test_bad_importance_or_method_option_is_one_line_naming_the_choices(run_cli, setup, tmp_path, args, says):
    _, _, table, *_ = setup
    code, _, err = run_cli("prune", "--lut", table, "--budget-ratio", "0.5", *args, "--out", tmp_path / "r")
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(
        "compare", "--lut", table, "--methods", "sp-lamp,halp:importance=l1", "--out", tmp_path / "c"
    )
    assert code == 2 and "method 'halp' does not take option 'importance'" in err and not (tmp_path / "c").exists()


def test_joined_change_is_the_difference_of_full_predictions(setup):
    """The one-group change the joined solver reads (from the terms touching the group) equals the
    difference of two full predictions, for the table and for the MAC-cost ablation."""
    from trtprune.lut.grid import allowed_widths
    from trtprune.methods.macs import MacCost

    state = _state(setup)
    rng = np.random.default_rng(0)
    allowed = {g.name: allowed_widths(g, g.channels, 8) for g in state.groups.groups}
    heavy = copy.copy(state.latency)
    heavy.join_weight = 1.0  # whatever the fit gave, the joined-layer terms count in full
    assert heavy.joins
    for cost in (state.latency, heavy, MacCost.of_table(state.latency)):
        for _ in range(5):
            widths = {n: int(rng.choice(ks)) for n, ks in allowed.items()}
            for n, ks in allowed.items():
                for k in ks:
                    other = {**widths, n: int(k)}
                    change = cost.joined_ms(other) - cost.joined_ms(widths)
                    assert cost.joined_change(widths, n, int(k)) == pytest.approx(change, abs=1e-12)


@pytest.mark.parametrize("solver", ["joined", "separable"])
def test_sp_lamp_solver_reads_the_prediction_it_names(setup, solver):
    """``joined`` (the default): within the goal in the table's full prediction (the joined-layer
    correction included) and worth at least the separable choice when that one is within it too;
    ``separable``: within the goal in the sum of single-group changes."""
    from trtprune.decide.decision import smallest_ms
    from trtprune.lut.grid import allowed_widths
    from trtprune.methods import get_method

    state = _state(setup)
    method = get_method("sp-lamp", {"solver": solver, "importance": "sp-lamp"})
    separable = get_method("sp-lamp", {"solver": "separable", "importance": "sp-lamp"})
    state.scores = method.score(state)
    latency = state.latency
    # goals inside the range this machine's table can reach (its floor differs between machines)
    cheapest = {
        g.name: int(min(allowed_widths(g, g.channels, 16), key=lambda k, g=g: latency.delta_ms(g.name, int(k))))
        for g in state.groups.groups
    }
    floor = max(smallest_ms(state.groups, latency, 16), latency.joined_ms(cheapest))
    assert floor < latency.base_ms, "the table predicts no cut as faster than the base"
    for share in (0.25, 0.5, 0.8):
        goal = floor + share * (latency.base_ms - floor)
        d = method.decide(state, goal)
        full = latency.joined_ms(d.widths)
        if solver == "joined":
            assert d.predicted_ms == pytest.approx(full) and full <= goal + 1e-9
            s = separable.decide(state, goal)
            if latency.joined_ms(s.widths) <= goal:
                assert d.value >= s.value - 1e-9
        else:
            assert d.predicted_ms == pytest.approx(latency.predict_widths(d.widths)) and d.predicted_ms <= goal + 1e-9
        d.plan.validate(state.groups, "resnet20")
    assert get_method("sp-lamp").solver == "joined"


# HALP -----------------------------------------------------------------------------------
def test_halp_knapsack_takes_a_block_only_after_the_more_important_ones():
    from trtprune.decide.solver import zero_one_knapsack

    # layer 0's second block is worth more than its first, but may only follow it
    assert zero_one_knapsack([np.array([1.0, 10.0])], [np.array([1.0, 1.0])], 1.0) == [1]
    assert zero_one_knapsack([np.array([1.0, 10.0])], [np.array([1.0, 1.0])], 2.0) == [2]


def test_halp_schedule_is_exponential():
    from trtprune.methods.halp import exponential_targets

    t = exponential_targets(1.0, 0.3, 4)
    assert t[-1] == pytest.approx(0.3)
    steps = -np.diff([1.0, *t])
    assert np.all(steps > 0) and np.all(np.diff(steps) < 0)  # every step smaller than the last
    assert np.allclose(np.array(t[1:]) / np.array(t[:-1]), t[0])  # the same fraction each step


def test_halp_decides_prefixes_under_its_table_and_keeps_every_layer(setup, tmp_path):
    from trtprune.backends import BackendConfig
    from trtprune.lut.conv_table import ConvTable, layer_keys
    from trtprune.methods import get_method

    state = _state(setup)
    halp = get_method("halp")
    halp.table = ConvTable(tmp_path / "convs.db", "ort", BackendConfig(), FAST)
    halp.keys = layer_keys(state.model, (1, 1, 28, 28))
    halp.full_ms = sum(halp.table.lookup(halp.keys.values())[k] for k in halp.keys.values())
    rng = np.random.default_rng(0)
    state.scores = {g.name: rng.random(g.channels) for g in state.groups.groups}
    d = halp.decide(state, 0.6 * state.latency.base_ms)
    assert halp.predicted_halp_ms <= 0.6 * halp.full_ms + 1e-9
    for g in state.groups.groups:
        w = d.widths[g.name]
        assert w >= 1  # never a layer pruned away
        kept = d.plan.groups.get(g.name, list(range(g.channels)))
        assert len(kept) == w
        top = np.argsort(-state.scores[g.name], kind="stable")[:w]
        assert sorted(kept) == sorted(top.tolist())  # the most important channels, as a prefix
    again = ConvTable(tmp_path / "convs.db", "ort", BackendConfig(), FAST)
    again.lookup(halp.keys.values())
    assert again.measured == 0  # stored rows are reused


def test_halp_times_each_entry_until_its_error_is_a_small_share_of_the_base(setup, tmp_path):
    """The per-layer table stops an entry after 8 rounds once its standard error is under
    ``entry_se`` of the base latency; the entries it stores are that precise or fully timed."""
    from trtprune.methods import MethodContext, get_method

    state = _state(setup)
    halp = get_method("halp", {"entry_se": 1e-3, "table": str(tmp_path / "convs.db")})
    context = MethodContext(state.model, (1, 1, 28, 28), state.groups, state.latency, str(tmp_path / "t.db"), "", None)
    halp.setup(context)
    timing = halp.table.timing
    assert timing.min_rounds == 8 and timing.target_se_ms == pytest.approx(1e-3 * state.latency.base_ms)
    assert halp.table.measured == len(set(halp.keys.values())) and halp.full_ms > 0
    assert "standard error of 0.001 of the base" in halp.describe().latency


# LAP ------------------------------------------------------------------------------------
def test_ddpg_agent_improves_its_reward_on_a_toy_problem():
    from trtprune.methods.ddpg import Ddpg, DdpgConfig

    want = np.array([0.2, 0.8, 0.5, 0.9, 0.1])
    agent = Ddpg(3, DdpgConfig(sigma=0.3, sigma_decay=0.95), seed=0)
    rewards = []
    for episode in range(120):
        states, actions = [], []
        prev = 0.0
        for t in range(len(want)):
            s = np.array([t / len(want), np.sin(3 * t), prev], dtype=np.float32)
            a = agent.act(s, random=episode < 10)
            states.append(s)
            actions.append(a)
            prev = a
        reward = -float(np.sum((np.array(actions) - want) ** 2))
        agent.end_episode(states, actions, reward, warmup=episode < 10)
        rewards.append(reward)
    greedy = []
    prev = 0.0
    for t in range(len(want)):
        a = agent.act(np.array([t / len(want), np.sin(3 * t), prev], dtype=np.float32), explore=False)
        greedy.append(a)
        prev = a
    assert np.mean(rewards[-20:]) > np.mean(rewards[:10]) + 0.3
    assert -np.sum((np.array(greedy) - want) ** 2) > np.mean(rewards[:10]) + 0.3


def test_dynamic_selection_ranks_by_weight_change(setup):
    import torch

    from trtprune.methods.lap import dynamic_scores

    _, _, _, model, groups, _ = setup
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    after = {n: p.clone() for n, p in before.items()}
    g = groups.by_name["layer3.1.conv1"]
    producer = next(m for m in g.members if m.role == "out" and m.kind == "Conv2d")
    w = after[f"{producer.layer}.weight"]
    with torch.no_grad():
        for rank, ch in enumerate([5, 17, 40]):
            w[ch] += 0.1 * (3 - rank)  # channel 5 moves most, then 17, then 40
    scores = dynamic_scores(groups, before, after)["layer3.1.conv1"]
    assert list(np.argsort(-scores)[:3]) == [5, 17, 40]
    assert np.count_nonzero(scores) == 3


# uniform / global-l1 ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["uniform", "global-l1"])
def test_bisected_baselines_meet_the_goal(setup, name):
    from trtprune.methods import get_method

    state = _state(setup)
    method = get_method(name)
    state.scores = method.score(state)
    with pytest.raises(InfeasibleBudget) as smallest:  # the least the knob can do, as the method predicts it
        method.decide(state, 0.0)
    lo = smallest.value.smallest_ms
    # where the table has every cut slower than the base (widths off ORT's 8-block, measured on a loaded
    # machine), the goals lie above the smallest prediction all the same
    hi = state.latency.base_ms if lo < state.latency.base_ms else 1.25 * lo
    for frac in (0.2, 0.5, 0.8):
        goal = lo + frac * (hi - lo)
        d = method.decide(state, goal)
        assert d.predicted_ms <= goal + 1e-12
        assert d.predicted_ms == pytest.approx(state.latency.predict_widths(d.widths))
    with pytest.raises(InfeasibleBudget):
        method.decide(state, lo - 1e-6)
    if name == "uniform":  # one keep ratio: every group at the same share (up to the grid)
        widths = method.decide(state, lo + 0.5 * (hi - lo)).widths
        ratios = {round(w / state.groups.by_name[n].channels, 6) for n, w in widths.items() if w >= 16}
        assert len(ratios) <= 2


# the shared matching loop --------------------------------------------------------------------
def test_matching_lands_just_under_the_measured_target():
    from trtprune.decide.matching import match_target

    # a table that is 30% optimistic about savings, and choices on a 0.01 grid
    def decide(goal):
        return round(goal, 2)

    def measure(choice):
        return 1.0 - 0.7 * (1.0 - choice)

    m = match_target(decide, lambda c: c, measure, target=0.5, base=1.0, rounds=8, tolerance=0.03)
    assert m.met and 0.5 * 0.97 <= m.measured <= 0.5
    # a pessimistic table: the first choice measures far under; the loop loosens the goal
    m = match_target(decide, lambda c: c, lambda c: c * 0.6, target=0.5, base=1.0, rounds=8, tolerance=0.03)
    assert m.met and m.measured >= 0.5 * 0.97 and m.trace[0][0] == 0.5 and m.trace[-1][0] > 0.7


def test_matching_confirms_a_choice_before_accepting_it():
    """A choice measured just under the target in a fast spell and over it when measured again is
    not accepted on its first measurement: it counts with the slower one, and the loop goes on."""
    from trtprune.decide.matching import match_target

    calls: dict[float, int] = {}

    def measure(choice):  # every first measurement 10% fast, every later one true
        calls[choice] = calls.get(choice, 0) + 1
        return choice * (0.9 if calls[choice] == 1 else 1.0)

    m = match_target(lambda g: round(g, 3), lambda c: c, measure, target=0.5, base=1.0, rounds=8, tolerance=0.03)
    assert m.met and m.measured <= 0.5 and m.choice <= 0.5  # accepted on its true latency, not the fast one
    assert calls[m.choice] == 2 and all(n <= 2 for n in calls.values())  # confirmed; nothing measured thrice
    unconfirmed = match_target(
        lambda g: round(g, 3), lambda c: c, lambda c: c * 0.9, target=0.5, base=1.0, rounds=8, confirm=False
    )
    assert unconfirmed.choice > 0.5  # without confirming, a choice 10% over is taken on one fast measurement


def test_matching_returns_the_fastest_when_nothing_fits():
    from trtprune.decide.matching import match_target

    m = match_target(lambda g: max(round(g, 2), 0.4), lambda c: c, lambda c: c + 0.3, target=0.5, base=1.0, rounds=5)
    assert not m.met and m.measured == pytest.approx(0.7)


# compare -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_runs_measures_and_resumes(setup, tmp_path, monkeypatch):
    from trtprune.compare import run as compare_run
    from trtprune.compare.config import CompareConfig, Stopped
    from trtprune.compare.run import run_compare

    root, ckpt, table, *_ = setup
    shared = PruneConfig(
        lut=str(table), stages=1, finetune=replace(FINETUNE, limit_train=256), match=MatchPolicy(rounds=3, calls=1)
    )
    config = CompareConfig(
        prune=shared, methods=("sp-lamp", "uniform"), budgets=(0.7,), seeds=2, out=str(tmp_path / "cmp")
    )
    out = run_compare(config)
    result = json.loads((out / "compare.json").read_text())
    assert {(r["method"], r["seed"]) for r in result["rows"]} == {
        (m, s) for m in ("sp-lamp", "uniform") for s in (0, 1)
    }
    for r in result["rows"]:
        assert r["budget_ratio"] == 0.7 and r["base_ms"] > 0 and 0 < r["top1"] <= 1
        assert r["measured_ms"] == pytest.approx(r["measured_share"] * r["base_ms"])
        assert r["call_shares"] == [r["measured_share"]] and not r["remeasured"]  # one call, within budget
    assert {s["method"] for s in result["summary"]} == {"sp-lamp", "uniform"}
    # a run over its budget is timed again, and its share is the mean of every call, not the last look
    monkeypatch.setattr(compare_run, "REMEASURE_OVER", -1.0)  # every run counts as over
    runs = [(r["method"], r["budget_ratio"], r["seed"], Path(r["run"])) for r in result["rows"]]
    rows, _ = compare_run.measure_runs(runs, str(table), calls=2)
    for r in rows:
        assert r["remeasured"] and len(r["call_shares"]) == 4
        assert r["measured_share"] == pytest.approx(sum(r["call_shares"]) / 4)
        assert r["first_share"] == pytest.approx(sum(r["call_shares"][:2]) / 2)
    monkeypatch.undo()
    assert (out / "pareto.png").stat().st_size > 0 and "| 0.70 | sp-lamp |" in (out / "compare.md").read_text()
    stamps = {p: p.stat().st_mtime for p in (out / "runs").glob("*/report.json")}
    run_compare(config)  # resumes: no run is redone
    assert {p: p.stat().st_mtime for p in (out / "runs").glob("*/report.json")} == stamps
    wider = replace(config, methods=("sp-lamp", "uniform", "global-l1"))
    run_compare(wider, finished_only=True)  # a snapshot: runs nothing, lists what is missing
    snapshot = json.loads((out / "compare.json").read_text())
    assert len(snapshot["rows"]) == 4 and snapshot["missing"] == ["global-l1-b0.7-s0", "global-l1-b0.7-s1"]
    assert "Not finished yet (2 runs" in (out / "compare.md").read_text()
    assert not list((out / "runs").glob("global-l1*"))
    with pytest.raises(Stopped, match="1 of 6 runs finished|5 of 6 runs finished"):  # one run, then it stops
        run_compare(wider, max_minutes=0)
    assert len(list((out / "runs").glob("global-l1*/report.json"))) == 1
    out = run_compare(wider, max_minutes=0)  # resumes with the last run, then measures all six
    assert len(json.loads((out / "compare.json").read_text())["rows"]) == 6
    assert {p: p.stat().st_mtime for p in (out / "runs").glob("[su]*/report.json")} == stamps  # none redone


def test_matching_moves_up_from_a_goal_the_method_cannot_reach():
    from trtprune.decide.matching import match_target

    def decide(goal):  # the method's own model cannot go below 0.45
        if goal < 0.45:
            raise InfeasibleBudget("too low")
        return round(goal, 2)

    m = match_target(decide, lambda c: c, lambda c: c * 0.8, target=0.4, base=1.0, rounds=8)
    assert m.met and 0.4 * 0.97 <= m.measured <= 0.4
    with pytest.raises(InfeasibleBudget):
        match_target(decide, lambda c: c, lambda c: c, target=0.4, base=1.0, rounds=1)


def test_matching_reaches_a_negative_floor_of_a_noisy_table():
    from trtprune.decide.matching import match_target

    def decide(goal):  # a noisy table whose smallest prediction is below zero
        if goal < -0.6:
            raise InfeasibleBudget("too low", smallest_ms=-0.6)
        return max(round(goal, 3), -0.6)

    # the first choice measures slower than the base: the loop steps below the floor, jumps back onto it
    m = match_target(decide, lambda c: c, lambda c: 1.2 if c > 0 else 0.2, target=0.28, base=1.0, rounds=4)
    assert m.met and m.measured <= 0.28 and m.trace[1][0] == pytest.approx(-0.6)


def test_matching_jumps_to_the_smallest_goal_the_method_can_do():
    from trtprune.decide.matching import match_target

    calls = []

    def decide(goal):  # the method's model says 0.6 is its floor; the engine is much faster there
        calls.append(goal)
        if goal < 0.6:
            raise InfeasibleBudget("too low", smallest_ms=0.6)
        return round(goal, 3)

    m = match_target(decide, lambda c: c, lambda c: c * 0.5, target=0.32, base=1.0, rounds=3)
    assert m.met and m.measured <= 0.32 and calls[1] == pytest.approx(0.6)


# the MAC-cost ablation and the Torch-Pruning baseline ------------------------------------------
@pytest.mark.parametrize("name,shape", [("resnet20", (1, 1, 28, 28)), ("mobilenet_v2", (1, 3, 64, 64))])
def test_mac_cost_predicts_the_macs_of_the_pruned_network(name, shape):
    from trtprune.graph.groups import find_groups
    from trtprune.graph.layer_shapes import count_macs
    from trtprune.lut.layers import layer_joins
    from trtprune.methods.macs import MacCost
    from trtprune.models import build_model
    from trtprune.surgery.apply import prune_copy

    model = build_model(name, shape)
    groups = find_groups(model, shape)
    full = {g.name: g.channels for g in groups.groups}
    cost = MacCost(tuple(layer_joins(model, shape, groups)), full, ref_ms=2.0)
    base_macs = count_macs(model, shape)
    rng = np.random.default_rng(0)
    for _ in range(3):
        widths = {g.name: g.partitions * int(rng.integers(1, g.channels // g.partitions + 1)) for g in groups.groups}
        macs = count_macs(prune_copy(model, groups, widths), shape)
        assert cost.predict_widths(widths) == pytest.approx(2.0 * macs / base_macs, rel=1e-9)
    g = groups.groups[1]
    assert cost.delta_ms(g.name, g.channels) == 0 and cost.delta_ms(g.name, 1) < 0


def test_torch_pruning_baseline_is_the_librarys_choice(setup):
    import copy

    import torch
    import torch_pruning as tp

    from trtprune.methods import get_method
    from trtprune.methods.tp_baseline import tp_width

    _, _, _, model, groups, latency = setup
    method = get_method("torch-pruning")
    state = _state(setup)
    state.scores = method.score(state)
    goal = 0.6 * latency.base_ms
    d = method.decide(state, goal)
    assert d.predicted_ms <= goal + 1e-9
    # the same ratio given to Torch-Pruning directly removes the same channels
    ratio = next(
        r for r in np.linspace(0, 0.99, 1000) if all(tp_width(g.channels, r) == d.widths[g.name] for g in groups.groups)
    )
    ref = copy.deepcopy(model)
    pruner = tp.pruner.MetaPruner(
        ref, torch.randn(1, 1, 28, 28), importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
        ignored_layers=[ref.fc],
    )  # fmt: skip
    names = {m: n for n, m in ref.named_modules()}
    for tp_group in pruner.step(interactive=True):
        name = names[tp_group[0].dep.target.module]
        dropped = {int(i) for i in tp_group[0].idxs}
        assert d.plan.groups[name] == [i for i in range(groups.by_name[name].channels) if i not in dropped]
    # a second stage never keeps a channel the first removed, even asked for less pruning
    later = _state(setup, current=d.widths, plan=d.plan)
    d2 = method.decide(later, 0.9 * latency.base_ms)
    for name, kept in d2.plan.groups.items():
        assert set(kept) <= set(d.plan.groups.get(name, kept))


def test_modelopt_fastnas_plan_is_the_subnet_fastnas_chose(setup, tmp_path):
    """The library decides: the plan's widths are the widths of FastNAS's subnet, its kept channels
    are the ones FastNAS kept (found by their batch norms), and a second stage keeps none removed."""
    import torch

    from trtprune.methods.base import MethodContext
    from trtprune.methods.modelopt_fastnas import ModeloptFastNAS, _plan_of

    _, _, _, base, groups, latency = setup
    model = copy.deepcopy(base).to(memory_format=torch.channels_last)  # as the fine-tune leaves it
    torch.manual_seed(0)
    for m in model.modules():  # distinct batch-norm parameters, as a trained model has
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    batches = [(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))) for _ in range(12)]
    method = ModeloptFastNAS(score_batches=2, calib_batches=1)
    method.setup(MethodContext(model, (1, 1, 28, 28), groups, latency, "", "", None, workdir=str(tmp_path / "work")))
    state = _state(setup, model=model, batches=lambda n: iter(batches[:n]), round_to=8)
    subnet = method._search(state, 0.5)
    assert (tmp_path / "work" / "fastnas-stage1.pth").exists()  # its search checkpoint, reused on resume
    plan = _plan_of(state, subnet)
    plan.validate(groups, "resnet20")
    convs = dict(subnet.named_modules())
    for g in groups.groups:
        producer = next(m for m in g.members if m.role == "out" and m.kind == "Conv2d")
        assert len(plan.groups.get(g.name, range(g.channels))) == convs[producer.layer].out_channels
    assert any(len(kept) < groups.by_name[name].channels for name, kept in plan.groups.items())
    second = _state(setup, model=model, batches=lambda n: iter(batches[:n]), round_to=8, plan=plan, stage=2)
    second.current = {g.name: len(plan.groups.get(g.name, range(g.channels))) for g in groups.groups}
    decision = method.decide(second, 0.3 * latency.base_ms)
    for name, kept in decision.plan.groups.items():
        assert set(kept) <= set(plan.groups.get(name, kept))
    with pytest.raises(InfeasibleBudget, match="no subnet") as exc:  # under its smallest subnet: it says so
        method.decide(state, 0.01 * latency.base_ms)
    assert exc.value.smallest_ms > 0.01 * latency.base_ms


@pytest.mark.slow
@pytest.mark.parametrize("name", method_names())
def test_every_method_prunes_end_to_end_within_its_budget(setup, tmp_path, name, reachable_ratio):
    from trtprune.prune import PruneConfig, run_prune

    _, ckpt, table, *_ = setup
    # 0.7, or above it where this small table's floor is (it moves between runs and machines): a ratio
    # near the predicted floor can be below what the pruned models measure
    ratio = reachable_ratio(table, ckpt, least=0.7)
    config = PruneConfig(
        lut=str(table),
        budget_ratio=ratio,
        method=name,
        stages=1,
        finetune=replace(FINETUNE, limit_train=256, limit_test=256),
        # the default match policy (3 calls), as users run it: a test asserting the budget on one call's
        # measurement fails on a noisy machine (stop 36's CI: matched at 0.70, model.onnx measured at 0.767)
        out=str(tmp_path / "r"),
    )
    report = json.loads((Path(run_prune(config).run_dir) / "report.json").read_text())
    assert report["method"]["method"] == name
    assert report["stages"][-1]["measured_share"] <= ratio  # the matched choice measured within the budget
    assert report["meets_budget"], report["measured_share"]  # and so does the final measurement of model.onnx
    assert report["params"] < report["base_params"]


def test_a_final_measurement_over_the_budget_is_measured_three_times_and_the_median_kept(setup, tmp_path):
    from trtprune.engine.export import export_onnx
    from trtprune.lut.store import LutStore
    from trtprune.prune.deploy import measure_final
    from trtprune.surgery.apply import prune_copy

    _, _, table, model, groups, _ = setup
    with LutStore(table) as store:
        meta = store.require_meta()
    export_onnx(model, (1, 1, 28, 28), tmp_path / "base.onnx")
    half = {g.name: max(1, g.channels // 2) for g in groups.groups}
    export_onnx(prune_copy(model, groups, half), (1, 1, 28, 28), tmp_path / "model.onnx")
    within = measure_final(meta, tmp_path / "base.onnx", tmp_path / "model.onnx", budget_share=1.5)
    assert within.shares == () and within.share < 1.5  # under the budget: measured once
    over = measure_final(meta, tmp_path / "base.onnx", tmp_path / "model.onnx", budget_share=0.0)
    assert len(over.shares) == 3 and over.share == sorted(over.shares)[1]
    # several calls (MatchPolicy format 2): every call's share kept, their mean the share, whatever the budget
    calls = measure_final(meta, tmp_path / "base.onnx", tmp_path / "model.onnx", budget_share=1.5, calls=4)
    assert calls.shares == () and len(calls.call_shares) == 4
    assert calls.share == pytest.approx(sum(calls.call_shares) / 4)
    assert calls.pruned.ratio == sorted(calls.call_shares)[2]  # the timings are the median call's
    assert Measurement.from_json(json.loads(json.dumps(calls.to_json()))) == calls


def test_a_candidate_share_is_the_mean_over_the_match_policys_calls(setup, monkeypatch):
    from trtprune.engine import timing
    from trtprune.lut.store import LutStore
    from trtprune.prune import timer as timer_module
    from trtprune.surgery.apply import prune_copy

    _, _, table, model, groups, _ = setup
    with LutStore(table) as store:
        meta = store.require_meta()
    ratios = []

    def spy(*args, **kwargs):  # the real harness; its paired ratios recorded
        out = timing.measure_interleaved(*args, **kwargs)
        ratios.append(out["cand"].ratio)
        return out

    monkeypatch.setattr(timer_module, "measure_interleaved", spy)
    timer = timer_module.CandidateTimer(meta, model, (1, 1, 28, 28), calls=3)
    try:
        share = timer.share(prune_copy(model, groups, {g.name: max(1, g.channels // 2) for g in groups.groups}))
    finally:
        timer.close()
    assert len(ratios) == 3 and share == pytest.approx(sum(ratios) / 3)
