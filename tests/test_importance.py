"""SP-LAMP and the importance registry."""

from __future__ import annotations

import numpy as np
import pytest

from trtprune.importance import SCORERS, score_groups, sp_lamp


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
    from trtprune.groups import find_groups
    from trtprune.models import build_model

    shape = (1, 1, 28, 28)
    groups = find_groups(build_model("resnet20", shape), shape)
    assert set(SCORERS.names()) == {"sp-lamp", "lamp", "l1", "l2", "taylor-bn", "random"}
    for name in ("sp-lamp", "lamp", "l1", "l2", "random"):
        scores = score_groups(groups, name)
        assert set(scores) == {g.name for g in groups.groups}
        assert all(len(scores[g.name]) == g.channels for g in groups.groups)
    sp = score_groups(groups, "sp-lamp")
    assert all((s == 1.0).sum() == 1 for s in sp.values())


def test_taylor_bn_uses_gradients():
    import torch

    from trtprune.groups import find_groups
    from trtprune.importance import ScoreContext, accumulate_grads
    from trtprune.models import build_model

    shape = (2, 1, 28, 28)
    model = build_model("resnet20", shape)
    groups = find_groups(model, shape)
    batches = [(torch.randn(*shape), torch.tensor([1, 3]))]
    scores = score_groups(groups, "taylor-bn", ScoreContext(grads=accumulate_grads(model, batches)))
    assert all(s.shape == (g.channels,) and (s >= 0).all() for g, s in zip(groups.groups, scores.values(), strict=True))
    assert any(s.sum() > 0 for s in scores.values())
