"""Unit tests of the estimators: hand-computed values, ESS, clipping, support, intervals, errors."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rlagent.datasets import (
    ESTIMATORS,
    FQEConfig,
    OPEData,
    OPEError,
    check_support,
    cross_fitted_q_and_v,
    direct_method,
    doubly_robust,
    effective_sample_size,
    estimate_all,
    fit_fqe,
    importance_sampling,
    ope_data,
    per_decision_importance_sampling,
    weighted_importance_sampling,
    weighted_per_decision_importance_sampling,
)
from rlagent.datasets import ope_models as rlagent_models


@pytest.fixture
def two():
    """Two episodes worked by hand: ratios (2, 0.5) and (2,)."""
    return ope_data(
        rewards=[[1.0, 2.0], [3.0]],
        behaviour=[[0.5, 0.5], [0.25]],
        target=[[1.0, 0.25], [0.5]],
        q=[[1.0, 1.0], [2.0]],
        v=[[0.5, 1.0], [1.5]],
    )


def test_hand_computed_values(two):
    assert importance_sampling(two).value == pytest.approx((1 * 3 + 2 * 3) / 2)
    assert weighted_importance_sampling(two).value == pytest.approx((1 * 3 + 2 * 3) / 3)
    assert per_decision_importance_sampling(two).value == pytest.approx((2 * 1 + 1 * 2 + 2 * 3) / 2)
    # Step 0: (2*1 + 2*3) / (2 + 2); step 1: (1*2 + 2*0) / (1 + 2), the ended episode keeping 2.
    wpdis = weighted_per_decision_importance_sampling(two).value
    assert wpdis == pytest.approx(2 + 2 / 3)
    assert direct_method(two).value == pytest.approx(1.0)
    # Episode 0: 2*(1-1) + 0.5 + 1*(2-1) + 2*1 = 3.5; episode 1: 2*(3-2) + 1.5 = 3.5.
    assert doubly_robust(two).value == pytest.approx(3.5)
    assert importance_sampling(two, gamma=0.5).value == pytest.approx((1 * 2 + 2 * 3) / 2)
    assert two.lengths.tolist() == [2, 1] and two.horizon == 2
    # Padding is an absorbing state whatever it held.
    assert two.rewards[1, 1] == 0 and two.behaviour[1, 1] == 1 and two.target[1, 1] == 1


def test_effective_sample_size():
    assert effective_sample_size(np.ones(7)) == pytest.approx(7)
    assert effective_sample_size(np.array([0.0, 5.0, 0.0])) == pytest.approx(1)
    assert effective_sample_size(np.array([1.0, 2.0, 3.0])) == pytest.approx(36 / 14)
    assert effective_sample_size(np.zeros(3)) == 0.0


def test_ess_and_clipping_shares(two):
    assert importance_sampling(two).ess == pytest.approx(9 / 5)  # weights 1 and 2
    assert importance_sampling(two).clipped_share == 0.0
    clipped = importance_sampling(two, max_weight=1.5)
    assert clipped.value == pytest.approx((1 * 3 + 1.5 * 3) / 2)
    assert clipped.clipped_share == 0.5  # episode 1's weight 2
    assert clipped.ess == pytest.approx(2.5**2 / (1 + 1.5**2))
    # Per decision: weights 2, 1 (episode 0) and 2 (episode 1); two of three clipped.
    assert per_decision_importance_sampling(two, max_weight=1.5).clipped_share == pytest.approx(
        2 / 3
    )
    assert doubly_robust(two, max_weight=1.5).clipped_share == pytest.approx(2 / 3)
    assert direct_method(two).clipped_share == 0.0 and direct_method(two).ess == 2


def test_on_policy_data_gives_the_mean_return_everywhere():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 5, size=30)
    rewards = [rng.normal(size=n) for n in lengths]
    probabilities = [rng.uniform(0.1, 1.0, size=n) for n in lengths]
    data = ope_data(rewards, probabilities, probabilities)
    mean_return = np.mean([r.sum() for r in rewards])
    for name, estimate in estimate_all(data).items():
        assert estimate.value == pytest.approx(mean_return), name
        assert estimate.ess == pytest.approx(30), name


def test_interval_shapes_and_json(two):
    estimates = estimate_all(two, n_bootstrap=50)
    assert list(estimates) == list(ESTIMATORS)
    for name, estimate in estimates.items():
        low, high = estimate.ci95
        assert isinstance(low, float) and isinstance(high, float)
        assert low <= estimate.value <= high or name in ("wis", "wpdis"), name
        assert estimate.interval == ("bootstrap" if name in ("wis", "wpdis") else "normal")
        out = estimate.to_json()
        assert set(out) == {"value", "ci95", "interval", "std_error", "ess", "clipped_share"}
        assert len(out["ci95"]) == 2
        json.dumps(out, allow_nan=False)
    # One episode: no interval (null in JSON), the value still there.
    one = ope_data([[1.0]], [[0.5]], [[0.5]])
    for name, estimate in estimate_all(one).items():
        assert estimate.value == pytest.approx(1.0), name
        assert all(math.isnan(x) for x in estimate.ci95), name
        assert estimate.to_json()["ci95"] == [None, None]
    # Without a value model, dm and dr are left out.
    assert list(estimate_all(one)) == ["is", "wis", "pdis", "wpdis"]


def test_wis_is_undefined_when_every_weight_is_zero():
    data = ope_data([[1.0], [2.0]], [[0.5], [0.5]], [[0.0], [0.0]])
    assert math.isnan(weighted_importance_sampling(data).value)
    assert importance_sampling(data).value == 0.0
    assert weighted_importance_sampling(data).to_json()["value"] is None


def test_bootstrap_is_seeded(two):
    a = weighted_importance_sampling(two, seed=3).ci95
    assert weighted_importance_sampling(two, seed=3).ci95 == a


def test_support_report():
    behaviour = [np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]), np.array([[0.3, 0.3, 0.4]])]
    target = [np.array([[0.2, 0.3, 0.5], [0.98, 0.02, 0.0]]), np.array([[0.3, 0.3, 0.4]])]
    report = check_support(behaviour, target)
    assert (report.decisions, report.poorly_supported) == (3, 2)
    assert (report.episodes, report.episodes_poorly_supported) == (2, 1)
    assert report.mean_unsupported_mass == pytest.approx(0.52 / 3)
    assert report.max_unsupported_mass == pytest.approx(0.5)
    assert report.warning().startswith(
        "Poor support: at 2 of 3 decisions (66.7%; 1 of 2 episodes) the target policy puts "
        "more than 0.01 of its probability on actions the logger took with probability <= 1e-06"
    )
    assert check_support(behaviour, target, threshold=0.05).poorly_supported == 1
    assert check_support(target, target).warning() is None
    assert json.dumps(report.to_json())


def _raises(message: str, call, *args, **kwargs):
    with pytest.raises(OPEError, match=re.escape(message)):
        call(*args, **kwargs)


def test_bad_data_is_refused_with_a_clear_message():
    _raises(
        "No episodes: off-policy evaluation needs at least one logged episode; check that the "
        "dataset holds decisions.",
        ope_data,
        [],
        [],
        [],
    )
    _raises(
        "Episode 0: rewards has 2 steps but behaviour has 1; pass one entry per decision in "
        "every array.",
        ope_data,
        [[1.0, 2.0]],
        [[0.5]],
        [[0.5, 0.5]],
    )
    _raises(
        "Got 2 episodes of rewards but 1 of target; pass one array per episode for each.",
        ope_data,
        [[1.0], [2.0]],
        [[0.5], [0.5]],
        [[0.5]],
    )
    _raises(
        "Episode 0, step 1: the target probability 1.5 is outside [0, 1]; pass probabilities, "
        "not log-probabilities or scores.",
        ope_data,
        [[1.0, 2.0]],
        [[0.5, 0.5]],
        [[0.5, 1.5]],
    )
    _raises(
        "Episode 1, step 0: the behaviour probability -0.2 is outside [0, 1]",
        ope_data,
        [[1.0], [1.0]],
        [[0.5], [-0.2]],
        [[0.5], [0.5]],
    )
    _raises(
        "Episode 0, step 0: the behaviour propensity of the taken action is 0, so the logger "
        "could not have taken it",
        ope_data,
        [[1.0]],
        [[0.0]],
        [[0.5]],
    )
    _raises(
        "Episode 0, step 0: rewards is nan, not a finite number.",
        ope_data,
        [[float("nan")]],
        [[0.5]],
        [[0.5]],
    )
    _raises(
        "Pass both q (Q(s_t, a_t)) and v (V(s_t) under the target policy), or neither.",
        ope_data,
        [[1.0]],
        [[0.5]],
        [[0.5]],
        q=[[1.0]],
    )
    _raises(
        "target has shape (2, 3); expected [episodes, horizon] = [2, 2] like rewards",
        OPEData,
        rewards=np.zeros((2, 2)),
        behaviour=np.ones((2, 2)),
        target=np.ones((2, 3)),
        lengths=np.array([2, 2]),
    )


def test_bad_settings_are_refused(two):
    _raises(
        "gamma=1.5; expected a discount in [0, 1] (1: undiscounted).",
        importance_sampling,
        two,
        gamma=1.5,
    )
    _raises(
        "max_weight=0; expected a positive cap on importance weights, or None for no clipping.",
        per_decision_importance_sampling,
        two,
        max_weight=0,
    )
    _raises(
        "n_bootstrap=0; expected an int >= 1 (e.g. 1000).",
        weighted_importance_sampling,
        two,
        n_bootstrap=0,
    )
    _raises(
        "Unknown estimators ['ips']; choose from ['is', 'wis', 'pdis', 'wpdis', 'dm', 'dr'].",
        estimate_all,
        two,
        names=["ips"],
    )
    no_model = ope_data([[1.0]], [[0.5]], [[0.5]])
    _raises(
        "dr needs a value model: build the data with q= (Q(s_t, a_t)) and v= (V(s_t) under the "
        "target policy), e.g. from rlagent.datasets.ope_models.fit_fqe.",
        doubly_robust,
        no_model,
    )
    _raises("dm needs a value model", direct_method, no_model)
    _raises(
        "Got 1 episodes of behaviour distributions but 2 of target distributions",
        check_support,
        [np.ones((1, 2))],
        [np.ones((1, 2))] * 2,
    )


def test_fqe_input_errors_and_degenerate_data():
    features, actions, rewards = [np.ones((2, 1))], [np.array([0, 1])], [np.ones(2)]
    targets = [np.full((2, 2), 0.5)]
    _raises(
        "Episode 0: features, actions, rewards and target distributions have 2, 2, 1 and 2 "
        "rows; expected one per decision.",
        fit_fqe,
        features,
        actions,
        [np.ones(1)],
        targets,
    )
    _raises(
        "actions range over 0..3 but the target distributions have 2 actions; pass flat action "
        "indices.",
        fit_fqe,
        features,
        [np.array([0, 3])],
        rewards,
        targets,
    )
    _raises(
        "folds=0; expected at least 1 (1: no cross-fitting).",
        cross_fitted_q_and_v,
        features,
        actions,
        rewards,
        targets,
        config=FQEConfig(folds=0),
    )
    # Constant features, a never-taken action, and fewer episodes than folds all work.
    q, v = cross_fitted_q_and_v(features, [np.array([0, 0])], rewards, targets)
    assert q[0].shape == v[0].shape == (2,)
    assert np.all(np.isfinite(q[0]))


def test_fqe_projects_wide_features():
    # Wider features than max_features are projected onto seeded random directions before the
    # fit (a slate policy's ~4,000 actor features would need a Gram matrix per ordered slate).
    rng = np.random.default_rng(0)
    lengths = [2, 3, 1, 2] * 10
    features = [rng.normal(size=(n, 40)) for n in lengths]
    actions = [rng.integers(0, 3, size=n) for n in lengths]
    rewards = [rng.normal(size=n) for n in lengths]
    targets = [np.full((n, 3), 1 / 3) for n in lengths]
    narrow = [f[:, :8] @ rng.normal(size=(8, 8)) for f in features]
    projected = rlagent_models._project(features, 8, seed=3)
    assert [p.shape for p in projected] == [(n, 8) for n in lengths]
    again = rlagent_models._project(features, 8, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(projected, again, strict=True))
    assert rlagent_models._project(narrow, 8, seed=3) is narrow
    assert rlagent_models._project(features, None, seed=3) is features
    config = FQEConfig(max_features=8)
    q, v = cross_fitted_q_and_v(features, actions, rewards, targets, config=config, seed=3)
    q_direct, v_direct = cross_fitted_q_and_v(
        projected, actions, rewards, targets, config=FQEConfig(max_features=None), seed=3
    )
    for a, b in zip(q + v, q_direct + v_direct, strict=True):
        np.testing.assert_allclose(a, b)
