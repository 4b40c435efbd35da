from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from rlagent.agents.slate import SlateDistribution


def _dist(n=5, slots=2, batch=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, n, generator=gen) * 2.0
    return SlateDistribution(n, slots).proba_distribution(logits), logits


def _enumerated(logits: torch.Tensor, slots: int) -> dict[tuple[int, ...], np.ndarray]:
    """Plackett-Luce probabilities of every ordered slate, computed by hand."""
    p = torch.softmax(logits.double(), dim=1).numpy()
    out = {}
    for slate in itertools.permutations(range(logits.shape[1]), slots):
        prob = np.ones(logits.shape[0])
        left = np.ones_like(prob)
        for pos in slate:
            prob = prob * p[:, pos] / left
            left = left - p[:, pos]
        out[slate] = prob
    return out


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_joint_probabilities_match_plackett_luce(slots):
    dist, logits = _dist(n=4, slots=slots)
    probs = dist.distribution.probs.double().numpy()
    expected = _enumerated(logits, slots)
    assert probs.shape == (3, 4**slots)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    for slate, prob in expected.items():
        index = int(np.ravel_multi_index(slate, (4,) * slots))
        np.testing.assert_allclose(probs[:, index], prob, rtol=1e-5, atol=1e-7)
    repeated = [i for i in range(4**slots) if len(set(np.unravel_index(i, (4,) * slots))) < slots]
    assert np.all(probs[:, repeated] == 0.0)


def test_log_prob_of_every_slate_matches_enumeration():
    dist, logits = _dist(n=4, slots=2, batch=1)
    for slate, prob in _enumerated(logits, 2).items():
        lp = dist.log_prob(torch.tensor([slate], dtype=torch.float32))
        assert lp.item() == pytest.approx(float(np.log(prob[0])), abs=1e-5)


def test_samples_are_distinct_and_follow_the_distribution():
    torch.manual_seed(0)
    dist, logits = _dist(n=4, slots=2, batch=1)
    draws = torch.cat([dist.sample() for _ in range(4000)])
    assert draws.shape == (4000, 2)
    assert bool((draws[:, 0] != draws[:, 1]).all())
    freq = np.bincount((draws[:, 0] * 4 + draws[:, 1]).numpy(), minlength=16) / 4000
    probs = dist.distribution.probs[0].numpy()
    assert np.abs(freq - probs).max() < 0.03


def test_mode_is_the_top_k_positions_best_first():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5]])
    dist = SlateDistribution(5, 3).proba_distribution(logits)
    assert dist.mode().tolist() == [[1, 3, 4]]
    assert dist.get_actions(deterministic=True).tolist() == [[1, 3, 4]]


def test_chain_rule_entropy_averages_to_the_exact_joint_entropy():
    dist, logits = _dist(n=5, slots=2, batch=2)
    probs = dist.distribution.probs.double()
    exact = -(torch.where(probs > 0, probs * probs.log(), torch.zeros_like(probs))).sum(dim=1)
    first = torch.softmax(logits.double(), dim=1)
    expected = torch.zeros(2, dtype=torch.float64)
    for a in range(5):
        dist.log_prob(torch.tensor([[a, (a + 1) % 5]] * 2))
        expected += first[:, a] * dist.entropy().double()
    torch.testing.assert_close(expected, exact, rtol=1e-5, atol=1e-5)


def test_one_slot_entropy_is_the_categorical_entropy():
    dist, logits = _dist(n=6, slots=1)
    expected = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(dist.entropy(), expected)


def test_gradients_stay_finite():
    logits = torch.randn(4, 6, requires_grad=True)
    dist = SlateDistribution(6, 3).proba_distribution(logits)
    actions = dist.sample()
    loss = -(dist.log_prob(actions).mean() + 0.01 * dist.entropy().mean())
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match=re.escape("needs 1 <= slots <= n, got slots=4, n=3")):
        SlateDistribution(3, 4)
    dist = SlateDistribution(3, 2)
    with pytest.raises(ValueError, match=re.escape("scores of shape [batch, 3], got (2, 4)")):
        dist.proba_distribution(torch.zeros(2, 4))
    with pytest.raises(RuntimeError, match="call proba_distribution first"):
        dist.mode()
    dist.proba_distribution(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=re.escape("positions in 0..2, got values from 0 to 5")):
        dist.log_prob(torch.tensor([[0, 5]]))


def _stop_by_hand(scores: np.ndarray, stop: float, slots: int) -> dict[tuple[int, ...], float]:
    """Probabilities of every canonical slate with a stop option, computed by hand."""
    n = len(scores)
    out: dict[tuple[int, ...], float] = {}

    def grow(prefix, prob):
        if len(prefix) == slots:
            out[tuple(prefix)] = out.get(tuple(prefix), 0.0) + prob
            return
        left = [c for c in range(n) if c not in prefix]
        weights = np.exp([scores[c] for c in left] + ([stop] if prefix else []))
        weights = weights / weights.sum()
        for c, w in zip(left, weights, strict=False):
            grow(prefix + [c], prob * w)
        if prefix:  # stop: every later slot repeats the first position
            grow_stopped = prefix + [prefix[0]] * (slots - len(prefix))
            out[tuple(grow_stopped)] = out.get(tuple(grow_stopped), 0.0) + prob * weights[-1]

    grow([], 1.0)
    return out


@pytest.mark.parametrize("slots", [2, 3])
def test_shorter_slates_probabilities_log_probs_and_samples_agree(slots):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, generator=gen)  # 4 candidates and a stop score
    dist = SlateDistribution(4, slots, stop=True).proba_distribution(logits)
    probs = dist.distribution.probs.double().numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    by_hand = _stop_by_hand(logits[0, :4].double().numpy(), float(logits[0, 4]), slots)
    assert sum(by_hand.values()) == pytest.approx(1.0)
    actions = torch.tensor(list(itertools.product(range(4), repeat=slots)))
    rows = logits[:1].expand(len(actions), 5)
    log_probs = SlateDistribution(4, slots, stop=True).proba_distribution(rows).log_prob(actions)
    for i, slate in enumerate(map(tuple, actions.tolist())):
        expected = by_hand.get(slate, 0.0)
        assert probs[0, i] == pytest.approx(expected, abs=1e-6)
        if expected > 0:
            assert float(log_probs[i].exp()) == pytest.approx(expected, abs=1e-6)
    torch.manual_seed(0)
    many = SlateDistribution(4, slots, stop=True).proba_distribution(logits[:1].expand(20000, 5))
    drawn = many.sample()
    index = (drawn * torch.tensor([4 ** (slots - 1 - j) for j in range(slots)])).sum(dim=1)
    freq = torch.bincount(index, minlength=4**slots).double().numpy() / len(index)
    np.testing.assert_allclose(freq, probs[0], atol=0.015)
    stopped = (drawn[:, 1] == drawn[:, 0]).double().mean().item()
    assert 0.05 < stopped < 0.95  # both kinds of slate are drawn


def test_shorter_slates_mode_stops_where_the_stop_score_wins():
    logits = torch.tensor([[3.0, 1.0, 2.0, -1.0, 1.5], [3.0, 1.0, 2.0, -1.0, 2.5]])
    mode = SlateDistribution(4, 3, stop=True).proba_distribution(logits).mode()
    assert mode.tolist() == [[0, 2, 0], [0, 0, 0]]
    # The first slot never stops, whatever the stop score: the slate is one item, not none.
    scores = torch.tensor([[0.0, 2.0, 0.0, 0.0, 9.0]])
    first = SlateDistribution(4, 2, stop=True).proba_distribution(scores)
    assert first.mode().tolist() == [[1, 1]]
    probs = first.distribution.probs[0].reshape(4, 4)
    assert float(probs.diagonal().sum()) > 0.99
    np.testing.assert_allclose(probs.sum(dim=1), torch.softmax(scores[0, :4], 0), atol=1e-6)


def test_shorter_slates_need_a_stop_column():
    with pytest.raises(ValueError, match=re.escape("[batch, 5]")):
        SlateDistribution(4, 2, stop=True).proba_distribution(torch.zeros(1, 4))
