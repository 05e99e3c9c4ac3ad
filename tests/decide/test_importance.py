"""SP-LAMP and the importance registry."""

from __future__ import annotations

import numpy as np
import pytest

from trtprune.decide.importance import SCORERS, score_groups, sp_lamp


def _reference(num: np.ndarray) -> np.ndarray:
    """Eq. 2 written as a loop: sort ascending, divide by the suffix sum."""
    order = sorted(range(len(num)), key=lambda i: (num[i], i))
    out = np.zeros(len(num))
    for pos, i in enumerate(order):
        out[i] = num[i] / sum(num[j] for j in order[pos:])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_sp_lamp_matches_the_formula(seed):
    rng = np.random.default_rng(seed)
    out_sq, in_sq = rng.random(17), rng.random(17)
    np.testing.assert_allclose(sp_lamp(out_sq, in_sq), _reference(out_sq * in_sq))
    np.testing.assert_allclose(sp_lamp(out_sq), _reference(out_sq))  # Eq. 3: no consumer


def test_exactly_one_channel_scores_one_even_with_ties():
    scores = sp_lamp(np.array([2.0, 2.0, 1.0, 2.0]))
    assert (scores == 1.0).sum() == 1
    assert scores[3] == 1.0  # ties broken by index: the last of the largest survives
    assert sp_lamp(np.zeros(4)).tolist() == [0, 0, 0, 1]


def test_scores_keep_input_order_and_rank_by_numerator():
    out_sq = np.array([5.0, 1.0, 3.0])
    scores = sp_lamp(out_sq)
    assert np.argsort(scores).tolist() == [1, 2, 0]


def test_bad_shapes():
    with pytest.raises(ValueError):
        sp_lamp(np.ones(3), np.ones(4))


def test_registry_scores_every_group():
    from trtprune.graph.groups import find_groups
    from trtprune.models import build_model

    shape = (1, 1, 28, 28)
    groups = find_groups(build_model("resnet20", shape), shape)
    assert set(SCORERS.names()) == {
        "sp-lamp",
        "sp-lamp-taylor",
        "sp-lamp-probe",
        "sp-lamp-group",
        "lamp",
        "l1",
        "l2",
        "taylor-bn",
        "random",
    }
    for name in ("sp-lamp", "sp-lamp-group", "lamp", "l1", "l2", "random"):
        scores = score_groups(groups, name)
        assert set(scores) == {g.name for g in groups.groups}
        assert all(len(scores[g.name]) == g.channels for g in groups.groups)
    per_group = score_groups(groups, "sp-lamp-group")
    assert all((s == 1.0).sum() == 1 for s in per_group.values())  # one curve per group


class _TwoProducers:
    """x -> a (3x3) + b (1x1) -> relu -> c -> pooled head; and a single-producer group d -> e."""

    @staticmethod
    def build():
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.a = nn.Conv2d(3, 6, 3, padding=1, bias=False)
                self.b = nn.Conv2d(3, 6, 1, bias=False)
                self.c = nn.Conv2d(6, 6, 3, padding=1, bias=False)
                self.d = nn.Conv2d(6, 6, 1, bias=False)
                self.e = nn.Conv2d(6, 4, 1, bias=False)
                self.head = nn.Linear(4, 2)

            def forward(self, x):
                y = torch.relu(self.a(x) + self.b(x))
                z = self.e(torch.relu(self.d(torch.relu(self.c(y)))))
                return self.head(z.mean((2, 3)))

        torch.manual_seed(0)
        return Net()


def _loop_sp_lamp(producers, consumer_in_sq):
    """Eq. 2 per producer as plain loops, summed: the reference for the per-layer score."""
    n = len(consumer_in_sq)
    total = [0.0] * n
    for out_sq in producers:
        num = [out_sq[i] * consumer_in_sq[i] for i in range(n)]
        order = sorted(range(n), key=lambda i: (num[i], i))
        for pos, i in enumerate(order):
            total[i] += num[i] / sum(num[j] for j in order[pos:])
    return np.array(total)


def test_sp_lamp_sums_each_producer_layers_own_curve():
    from trtprune.graph.groups import find_groups

    model = _TwoProducers.build()
    groups = find_groups(model, (1, 3, 8, 8))
    g = next(g for g in groups.groups if set(g.producers) >= {"a", "b"})
    assert set(g.consumers) == {"c"}
    w = {n: p.detach().double().numpy() for n, p in model.named_parameters()}
    out_sq = [(w[f"{k}.weight"] ** 2).reshape(6, -1).sum(1) for k in ("a", "b")]
    in_sq = (w["c.weight"] ** 2).transpose(1, 0, 2, 3).reshape(6, -1).sum(1)
    expected = _loop_sp_lamp(out_sq, in_sq)
    np.testing.assert_allclose(score_groups(groups, "sp-lamp")[g.name], expected)
    # each producer keeps its own score-1 filter: the sum gives at least 1 to both of them
    tops = {int(np.argmax(o * in_sq)) for o in out_sq}
    assert all(expected[t] >= 1.0 for t in tops)
    # not the per-group curve (one order from summed norms), which is a different ranking of values
    assert not np.allclose(score_groups(groups, "sp-lamp-group")[g.name], expected)


def test_a_group_of_more_layers_is_worth_more_than_one_layer_of_the_same_norms():
    import torch

    from trtprune.decide.importance import layer_sp_lamp
    from trtprune.graph.groups import find_groups

    model = _TwoProducers.build()
    v = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5, 2.5])  # every producer's filter norms
    u = torch.tensor([2.0, 1.0, 1.0, 0.5, 3.0, 1.0])  # every consumer's input-slice norms
    with torch.no_grad():
        for name in ("a", "b", "d"):
            w = getattr(model, name).weight
            w.copy_(v.view(6, 1, 1, 1).expand_as(w) / w[0].numel() ** 0.5)
        for name in ("c", "e"):
            w = getattr(model, name).weight
            w.copy_(u.view(1, 6, 1, 1).expand_as(w) / (w.shape[0] * w.shape[2] * w.shape[3]) ** 0.5)
    groups = find_groups(model, (1, 3, 8, 8))
    pair = next(g for g in groups.groups if set(g.producers) >= {"a", "b"})
    single = groups.by_name["d"]
    assert set(layer_sp_lamp(groups, pair)) == {"a", "b"} and single.producers == ("d",)
    value = score_groups(groups, "sp-lamp")
    # the same norms: each of the pair's two layers has the single layer's curve, so twice its value
    np.testing.assert_allclose(value[pair.name], 2 * value[single.name], rtol=1e-5)
    assert value[pair.name].sum() > value[single.name].sum()
    # the per-group curve (summed norms, one curve) gives both the same value
    old = score_groups(groups, "sp-lamp-group")
    np.testing.assert_allclose(old[pair.name], old[single.name], rtol=1e-5)


def _taylor_setup():
    import torch

    from trtprune.decide.importance import ScoreContext, taylor_per_layer
    from trtprune.graph.groups import find_groups
    from trtprune.models import build_model

    shape = (4, 1, 28, 28)
    model = build_model("resnet20", shape)
    groups = find_groups(model, shape)
    torch.manual_seed(0)
    batches = [(torch.randn(*shape), torch.tensor([1, 3, 0, 7])) for _ in range(3)]
    return model, groups, batches, ScoreContext(taylor=taylor_per_layer(model, batches))


def test_taylor_bn_is_halps_eq_27_averaged_over_batches():
    import torch
    import torch.nn.functional as F

    model, groups, batches, context = _taylor_setup()
    scores = score_groups(groups, "taylor-bn", context)
    assert all(s.shape == (g.channels,) and (s >= 0).all() for g, s in zip(groups.groups, scores.values(), strict=True))
    # conv1's group: |g_gamma gamma + g_beta beta| of each of its batch norms, per batch, averaged
    g = groups.by_name["conv1"]
    norms = [m.layer for m in g.members if m.kind == "BatchNorm2d"]
    expected = np.zeros(g.channels)
    model.train()
    for x, y in batches:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for name in norms:
            bn = model.get_submodule(name)
            expected += (bn.weight.grad * bn.weight + bn.bias.grad * bn.bias).abs().detach().double().numpy()
    np.testing.assert_allclose(scores["conv1"], expected / len(batches), rtol=1e-6)
    assert torch.is_grad_enabled()


def test_taylor_scoring_leaves_the_running_statistics_as_they_were():
    """The training-mode passes that take the gradients must not move the batch norms' running
    statistics (a scored model would otherwise evaluate and fine-tune from other buffers)."""
    import torch

    from trtprune.decide.importance import taylor_per_layer
    from trtprune.models import build_model

    shape = (4, 1, 28, 28)
    model = build_model("resnet20", shape)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    taylor_per_layer(model, [(torch.randn(*shape) * 3 + 1, torch.tensor([1, 3, 0, 7])) for _ in range(3)])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training


def test_loss_calibrated_sp_lamp_keeps_the_ranking_and_totals_the_sensitivity():
    from trtprune.decide.importance import group_sensitivity

    _, groups, _, context = _taylor_setup()
    calibrated = score_groups(groups, "sp-lamp-taylor", context)
    taylor = score_groups(groups, "taylor-bn", context)
    paper = score_groups(groups, "sp-lamp")
    for g in groups.groups:
        total = group_sensitivity(groups, g, context)
        assert calibrated[g.name].sum() == pytest.approx(total)
        assert total == pytest.approx(taylor[g.name].sum())  # every resnet20 group has batch norms
        np.testing.assert_allclose(calibrated[g.name] / calibrated[g.name].sum(), paper[g.name] / paper[g.name].sum())


def test_loss_based_scores_need_data():
    from trtprune.core.errors import TrtpruneError
    from trtprune.graph.groups import find_groups
    from trtprune.models import build_model

    groups = find_groups(build_model("resnet20", (1, 1, 28, 28)), (1, 1, 28, 28))
    for name in ("taylor-bn", "sp-lamp-taylor", "sp-lamp-probe"):
        with pytest.raises(TrtpruneError, match="needs training data"):
            score_groups(groups, name)


def test_loss_probe_is_the_loss_change_of_removing_each_groups_lower_half():
    """The probe zeroes the lower half of one group at a time on a copy: its figure is that copy's
    loss minus the model's, the model is not changed, and sp-lamp-probe's lower half is worth it."""
    import copy

    import torch
    import torch.nn.functional as F

    from trtprune.decide.importance import ScoreContext, loss_probe, lower_half
    from trtprune.surgery.apply import zero_removed
    from trtprune.surgery.plan import Plan

    model, groups, batches, _ = _taylor_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = loss_probe(model, groups, batches, "resnet20")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(probe) == {g.name for g in groups.groups} and any(abs(d) > 1e-6 for d in probe.values())
    g = groups.by_name["conv1"]
    paper = score_groups(groups, "sp-lamp")[g.name]
    drop = set(lower_half(paper).tolist())
    assert len(drop) == g.channels // 2
    copy_ = copy.deepcopy(model).eval()
    zero_removed(
        groups, Plan("resnet20", (4, 1, 28, 28), {g.name: [i for i in range(g.channels) if i not in drop]}), copy_
    )
    with torch.no_grad():
        loss = [sum(float(F.cross_entropy(m.eval()(x), y)) for x, y in batches) / len(batches) for m in (copy_, model)]
    assert probe[g.name] == pytest.approx(loss[0] - loss[1], rel=1e-5, abs=1e-7)
    scores = score_groups(groups, "sp-lamp-probe", ScoreContext(probe=probe))[g.name]
    assert scores[sorted(drop)].sum() == pytest.approx(max(probe[g.name], 1e-4))
    np.testing.assert_allclose(scores / scores.sum(), paper / paper.sum())
