"""Exact-answer tests: the estimators against a small MDP's true value, over repeated datasets.

The truth is computed by enumerating every history (small_mdp.true_value). Theory says: IS,
PDIS and DR (with any value model) are unbiased and their normal intervals cover the truth
about 95% of the time; the self-normalised forms are consistent; DR with a good value model has
a far smaller variance than IS. numpy only, seeded, a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from small_mdp import HORIZON, MU, N_ACTIONS, N_STATES, PI, action_values, simulate, true_value

from rlagent.datasets import (
    FQEConfig,
    cross_fitted_q_and_v,
    direct_method,
    doubly_robust,
    estimate_all,
    fit_fqe,
    importance_sampling,
    ope_data,
    per_decision_importance_sampling,
    q_and_v,
    weighted_importance_sampling,
    weighted_per_decision_importance_sampling,
)

TRUTH = true_value()
REPS = 200
EPISODES = 200


def _wrong_q() -> np.ndarray:
    """A deliberately wrong value model: random numbers of the wrong scale."""
    return np.random.default_rng(7).uniform(-3.0, 3.0, size=(HORIZON, N_STATES, N_ACTIONS))


@pytest.fixture(scope="module")
def repeated():
    """Per estimator, ``REPS`` estimates, each from its own dataset of ``EPISODES`` episodes."""
    rng = np.random.default_rng(2024)
    good, wrong = action_values(), _wrong_q()
    out: dict[str, list] = {"is": [], "pdis": [], "dr_good": [], "dr_wrong": [], "dm": []}
    for _ in range(REPS):
        logged = simulate(EPISODES, rng)
        with_good, with_wrong = logged.data(good), logged.data(wrong)
        out["is"].append(importance_sampling(with_good))
        out["pdis"].append(per_decision_importance_sampling(with_good))
        out["dr_good"].append(doubly_robust(with_good))
        out["dr_wrong"].append(doubly_robust(with_wrong))
        out["dm"].append(direct_method(with_good))
    return out


def test_truth_by_enumeration_matches_backward_induction():
    from small_mdp import START

    q = action_values()
    assert TRUTH == pytest.approx(float(START @ (PI * q[0]).sum(axis=1)), abs=1e-12)
    assert TRUTH == pytest.approx(1.8892753, abs=1e-9)  # pinned: the MDP is fixed
    # The target differs from the behaviour by a margin the tests can see.
    assert abs(true_value(MU) - TRUTH) > 0.5


@pytest.mark.parametrize("name", ["is", "pdis", "dr_good", "dr_wrong"])
def test_unbiased_estimators_average_to_the_truth_and_cover_it(repeated, name):
    values = np.array([e.value for e in repeated[name]])
    standard_error = values.std(ddof=1) / np.sqrt(REPS)
    assert abs(values.mean() - TRUTH) < 3.5 * standard_error, (values.mean(), standard_error)
    covered = np.mean([e.ci95[0] <= TRUTH <= e.ci95[1] for e in repeated[name]])
    assert covered >= 0.85, covered
    # Each interval is value -/+ 1.96 standard errors.
    first = repeated[name][0]
    assert first.ci95[1] - first.value == pytest.approx(1.959963984540054 * first.std_error)


def test_dr_has_far_lower_variance_than_is_with_a_good_value_model(repeated):
    spread = {name: np.std([e.value for e in repeated[name]]) for name in repeated}
    assert spread["dr_good"] < 0.5 * spread["is"], spread
    assert spread["pdis"] < spread["is"], spread


def test_dm_with_the_exact_model_is_unbiased(repeated):
    values = np.array([e.value for e in repeated["dm"]])
    assert abs(values.mean() - TRUTH) < 3.5 * values.std(ddof=1) / np.sqrt(REPS)


def _rmse(estimator, episodes: int, reps: int, rng: np.random.Generator) -> float:
    errors = [
        estimator(simulate(episodes, rng).data(), n_bootstrap=1).value - TRUTH for _ in range(reps)
    ]
    return float(np.sqrt(np.mean(np.square(errors))))


@pytest.mark.parametrize(
    "estimator", [weighted_importance_sampling, weighted_per_decision_importance_sampling]
)
def test_weighted_forms_converge(estimator):
    rng = np.random.default_rng(11)
    small, large = _rmse(estimator, 50, 60, rng), _rmse(estimator, 5000, 60, rng)
    # RMSE falls like 1/sqrt(n): 10x from 50 to 5,000 episodes; ask for 4x.
    assert large < small / 4, (small, large)
    assert large < 0.05


@pytest.mark.parametrize(
    "estimator", [weighted_importance_sampling, weighted_per_decision_importance_sampling]
)
def test_weighted_forms_bootstrap_intervals_cover_the_truth(estimator):
    rng = np.random.default_rng(5)
    estimates = [estimator(simulate(500, rng).data(), n_bootstrap=200, seed=i) for i in range(60)]
    covered = np.mean([e.ci95[0] <= TRUTH <= e.ci95[1] for e in estimates])
    assert covered >= 0.8, covered
    assert all(e.interval == "bootstrap" for e in estimates)


def test_tabular_fqe_recovers_the_action_values_and_dm_converges():
    logged = simulate(20000, np.random.default_rng(3))
    features = logged.features()
    actions, rewards = logged.ragged(logged.actions), logged.ragged(logged.rewards)
    targets = logged.ragged(PI[logged.states])  # [T, A] per episode
    behaviour = logged.ragged(MU[logged.states, logged.actions])
    target = logged.ragged(PI[logged.states, logged.actions])
    config = FQEConfig(ridge=1e-6, action_ridge=1e-6)
    model = fit_fqe(features, actions, rewards, targets, config=config)
    grid = np.eye(HORIZON * N_STATES)
    fitted = model.q(grid).reshape(HORIZON, N_STATES, N_ACTIONS)
    np.testing.assert_allclose(fitted, action_values(), atol=0.05)
    q, v = q_and_v(model, features, actions, targets)
    data = ope_data(rewards, behaviour, target, q=q, v=v)
    assert direct_method(data).value == pytest.approx(TRUTH, abs=0.02)
    # Cross-fitted values give the same answer here, and every estimator agrees.
    q2, v2 = cross_fitted_q_and_v(features, actions, rewards, targets, config=config)
    estimates = estimate_all(ope_data(rewards, behaviour, target, q=q2, v=v2), n_bootstrap=50)
    assert list(estimates) == ["is", "wis", "pdis", "wpdis", "dm", "dr"]
    for name, estimate in estimates.items():
        assert estimate.value == pytest.approx(TRUTH, abs=0.06), name
        assert estimate.ci95[0] <= estimate.value <= estimate.ci95[1], name


def test_wpdis_keeps_ended_episodes_in_its_normalisation():
    # In this MDP the target ends episodes less often than the logger. Normalising each step
    # over only the episodes that reach it would converge to 1.911 (E[r_t | T > t] summed),
    # 0.022 above the truth; keeping ended episodes with their final weight converges to it.
    data = simulate(200_000, np.random.default_rng(0)).data()
    estimate = weighted_per_decision_importance_sampling(data, n_bootstrap=1)
    assert estimate.value == pytest.approx(TRUTH, abs=0.008)
