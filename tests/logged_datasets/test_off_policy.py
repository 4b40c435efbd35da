"""off_policy_evaluate on Episode objects with a table as the target (numpy only, no model)."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from small_mdp import MU, PI, action_values, simulate, true_value

from rlagent.datasets import (
    Episode,
    OPEError,
    TargetOutputs,
    action_indices,
    estimate_all,
    off_policy_evaluate,
)

KEYS = ["is", "wis", "pdis", "wpdis", "dm", "dr"]


class TableTarget:
    """The small MDP's target policy; observations are ``{"state": s, "t": t}``."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, policy=PI, critic=True):
        self.policy = policy
        self.critic = critic
        self.calls = 0

    def outputs(self, observations, masks=None):
        self.calls += 1
        states = np.array([o["state"] for o in observations], dtype=np.int64)
        steps = np.array([o["t"] for o in observations], dtype=np.int64)
        q = action_values(self.policy)
        values = (self.policy[states] * q[steps, states]).sum(axis=1)
        features = np.zeros((len(states), 9))
        features[np.arange(len(states)), steps * 3 + states] = 1.0
        return TargetOutputs(self.policy[states], values if self.critic else None, features)


def _episodes(n: int, seed: int, propensity_override: float | None = None) -> list[Episode]:
    logged = simulate(n, np.random.default_rng(seed))
    out = []
    for i, length in enumerate(logged.lengths):
        states, actions = logged.states[i, :length], logged.actions[i, :length]
        observations = [{"state": int(s), "t": t} for t, s in enumerate(states)]
        propensities = MU[states, actions]
        if propensity_override is not None:
            propensities = np.full(length, propensity_override)
        out.append(
            Episode(
                id=i,
                observations=[*observations, observations[-1]],
                actions=actions,
                rewards=logged.rewards[i, :length],
                terminated=True,
                truncated=False,
                action_probabilities=MU[states],
                propensities=propensities,
            )
        )
    return out


def test_report_matches_the_estimators_and_the_truth():
    episodes = _episodes(3000, seed=1)
    target = TableTarget()
    report = off_policy_evaluate(episodes, target, n_bootstrap=100)
    assert target.calls == 1  # one batched call for every decision
    out = report.to_json()
    assert list(out)[:6] == KEYS
    assert {"ess", "episodes", "decisions", "warnings", "support"} <= set(out)
    assert out["episodes"] == 3000 and out["warnings"] == []
    json.dumps(out, allow_nan=False)
    truth = true_value()
    for name in KEYS:
        low, high = out[name]["ci95"]
        assert low - 0.05 <= truth <= high + 0.05, (name, out[name])
    # The same numbers as the array estimators on the same data.
    logged = simulate(3000, np.random.default_rng(1))
    direct = estimate_all(logged.data(), n_bootstrap=100)
    for name in ("is", "wis", "pdis", "wpdis"):
        assert report.estimates[name].value == pytest.approx(direct[name].value), name
    assert "estimator" in report.summary()


def test_critic_value_model_and_no_value_model():
    episodes = _episodes(500, seed=2)
    critic = off_policy_evaluate(episodes, TableTarget(), value_model="critic", n_bootstrap=20)
    # Q(s, a) = V(s): dm is the mean start value of the (exact) critic.
    assert critic.estimates["dm"].value == pytest.approx(true_value(), abs=0.05)
    assert critic.value_model == "critic"
    assert critic.warnings == ()
    shaped = TableTarget()
    shaped.critic_shaped = True  # as TargetPolicy says of a model trained with reward_shaping
    report = off_policy_evaluate(episodes, shaped, value_model="critic", n_bootstrap=20)
    assert report.warnings == (
        "The target model's critic was trained on shaped rewards (reward_shaping): its "
        "values are the shaped return, which differs from the env's by the shaping "
        "potential, so dm is biased and dr has more variance than it needs; use "
        "value_model='fqe' (--value-model fqe).",
    )
    fitted = off_policy_evaluate(episodes, shaped, value_model="fqe", n_bootstrap=20)
    assert fitted.warnings == ()
    bare = off_policy_evaluate(episodes, TableTarget(), value_model=None, n_bootstrap=20)
    assert list(bare.estimates) == KEYS[:4]
    with pytest.raises(OPEError, match=re.escape("value_model='critic' needs a critic")):
        off_policy_evaluate(episodes, TableTarget(critic=False), value_model="critic")
    with pytest.raises(OPEError, match=re.escape("value_model='tabular' is unknown")):
        off_policy_evaluate(episodes, TableTarget(), value_model="tabular")


def test_poor_support_and_deterministic_logs_are_reported():
    # A target that takes action 1 in state 2 far more than the logger's recorded 1.0 on the
    # taken actions allows: every recorded propensity 1 (a deterministic service's log).
    episodes = _episodes(200, seed=3, propensity_override=1.0)
    report = off_policy_evaluate(episodes, TableTarget(), n_bootstrap=20)
    assert report.support.poorly_supported == report.decisions
    assert any(w.startswith("Poor support: at ") for w in report.warnings)
    assert any(
        "the recorded propensity differs from the recorded distribution" in w
        for w in report.warnings
    )


def test_low_ess_and_clipping_warnings():
    far = np.array([[0.001, 0.999], [0.001, 0.999], [0.999, 0.001]])
    episodes = _episodes(300, seed=4)
    report = off_policy_evaluate(episodes, TableTarget(far), n_bootstrap=20)
    assert report.ess < 30
    assert any(w.startswith("Effective sample size ") for w in report.warnings)
    clipped = off_policy_evaluate(episodes, TableTarget(far), max_weight=5.0, n_bootstrap=20)
    assert clipped.estimates["is"].clipped_share > 0
    assert any(w.startswith("max_weight=5 clipped weights (is ") for w in clipped.warnings)


def test_bad_inputs():
    with pytest.raises(OPEError, match=re.escape("No episodes: off-policy evaluation needs")):
        off_policy_evaluate([], TableTarget())
    wide = _episodes(3, seed=5)
    wide = [
        Episode(
            e.id,
            e.observations,
            e.actions,
            e.rewards,
            True,
            False,
            np.ones((len(e), 3)) / 3,
            e.propensities,
        )
        for e in wide
    ]
    with pytest.raises(
        OPEError,
        match=re.escape(
            "Episode 0 records distributions over 3 actions but the target's action space "
            "Discrete(2) has 2"
        ),
    ):
        off_policy_evaluate(wide, TableTarget())


def test_action_indices():
    space = gym.spaces.MultiDiscrete([4, 4])
    assert action_indices(np.array([[0, 1], [3, 2]]), space).tolist() == [1, 14]
    assert action_indices(np.array([1, 0]), gym.spaces.Discrete(2)).tolist() == [1, 0]
    with pytest.raises(OPEError, match=re.escape("do not fit Discrete(2)")):
        action_indices(np.array([2]), gym.spaces.Discrete(2))
    with pytest.raises(OPEError, match=re.escape("do not fit MultiDiscrete([4 4])")):
        action_indices(np.array([[0, 4]]), space)
