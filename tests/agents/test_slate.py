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
