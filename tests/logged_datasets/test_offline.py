"""Learning from logs: weighted behaviour cloning and AWR on customer-service logs, tiny models."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from expert_episodes import expert_episode

import rlagent  # noqa: F401  (registers the envs)
import rlagent.agents.text_ppo
from rlagent.agents import (
    ConfigError,
    InitModelError,
    ModelEnvMismatchError,
    OfflineConfig,
    OfflineLearningError,
    advantage_weights,
    fit_offline,
    lambda_returns,
    load_model,
    logged_action_probabilities,
    make_expert,
    make_ppo,
    offline_scores,
    prior_ratios,
    save_model,
)
from rlagent.agents.loading import read_policy_state
from rlagent.datasets import (
    DatasetError,
    Episode,
    episode_outcome,
    feedback_weights,
    learn_from_dataset,
    logged_decisions,
    split_episodes,
)
from rlagent.env_making import make_env
from rlagent.evaluation import evaluate

CS = "rlagent/CustomerService-v0"
CS_KWARGS = {"history": 3, "max_turns": 5}
REC = "rlagent/Recommendation-v0"
REC_KWARGS = {"n_candidates": 4, "slate_size": 2, "history_length": 2, "n_items": 50}
#: A new model's settings: the env's own config with the tiny random encoder.
TINY = dict(encoder="tiny-random", encoder_layers=[-1], max_length=16, n_steps=8, batch_size=8)
QUICK = dict(epochs=15, batch_size=32, learning_rate=3e-3, settings=TINY)
#: The bad logger escalates half the time and otherwise acts uniformly at random: a customer
#: gets passed on or answered at random (an agent that gives up too often).


@pytest.fixture(scope="module")
def logs():
    """100 logged episodes (40 the expert's, 60 the random logger's) and 40 expert episodes."""
    env = gym.make(CS, **CS_KWARGS)
    expert = make_expert(env, "labelled")
    rng = np.random.default_rng(0)
    logged = [expert_episode(env, expert, s, s % 10 < 4, rng) for s in range(100)]
    held_out = [expert_episode(env, expert, 10_000 + s, True, rng) for s in range(40)]
    env.close()
    return logged, held_out


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    """A new tiny customer-service model, saved (the 'agent v1' that could have logged)."""
    path = tmp_path_factory.mktemp("offline-v1") / "v1"
    return save_model(
        make_ppo(CS, env_kwargs=CS_KWARGS, n_envs=1, seed=0, device="cpu", **TINY), path
    )


@pytest.fixture(scope="module")
def plain(logs):
    """Plain behaviour cloning of every logged decision, each weighing 1."""
    return learn_from_dataset(
        logs[0], env_id=CS, env_kwargs=CS_KWARGS, feedback_weight="none", **QUICK
    )


def _expert_agreement(model, episodes) -> float:
    env = make_env(CS, CS_KWARGS)
    data = logged_decisions(episodes, model, env, gamma=0.99)
    env.close()
    return offline_scores(model.policy, data).agreement


def test_bc_weighted_by_return_follows_the_expert_more_than_plain_bc(logs, plain):
    logged, held_out = logs
    assert np.mean([e.rewards.sum() for e in logged[:4]]) > np.mean(
        [e.rewards.sum() for e in logged[4:10]]
    )
    weighted = learn_from_dataset(logged, env_id=CS, env_kwargs=CS_KWARGS, **QUICK)
    outcome = learn_from_dataset(
        logged, env_id=CS, env_kwargs=CS_KWARGS, feedback_weight="outcome", **QUICK
    )
    plain_agreement = _expert_agreement(plain.model, held_out)
    assert _expert_agreement(weighted.model, held_out) >= plain_agreement + 0.1
    assert _expert_agreement(outcome.model, held_out) >= plain_agreement + 0.1
    # The held-out share is a seeded choice of episodes, reported and the same for every run.
    assert weighted.val_episode_ids == plain.val_episode_ids
    assert len(weighted.val_episode_ids) == 20 and weighted.train_episodes == 80
    train_at, val_at = split_episodes(100, 0.2, seed=0)
    assert weighted.val_episode_ids == tuple(int(i) for i in val_at)
    assert len(weighted.losses) == 15 and set(weighted.losses[0]) == {"policy_loss", "value_loss"}
    assert weighted.losses[-1]["policy_loss"] < weighted.losses[0]["policy_loss"]
    # On the held-out episodes, the weighted loss fell.
    assert weighted.val_scores.weighted_loss < weighted.val_before.weighted_loss
    out = weighted.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["settings"]["feedback_weight"] == "return" and out["model_path"] is None


def test_feedback_weight_rules_on_hand_computed_episodes():
    def episode(rewards, feedback=None):
        n = len(rewards)
        infos = {} if feedback is None else {"feedback": feedback}
        return Episode(
            0,
            [{}] * (n + 1),
            np.zeros(n, np.int64),
            np.array(rewards, float),
            True,
            False,
            np.full((n, 2), 0.5),
            np.full(n, 0.5),
            infos,
        )

    episodes = [episode([0.0]), episode([1.0, 1.0]), episode([4.0])]
    z = (np.array([0.0, 2.0, 4.0]) - 2.0) / np.std([0.0, 2.0, 4.0])
    assert feedback_weights(episodes) == pytest.approx(np.exp(z))
    assert feedback_weights(episodes, temperature=2.0) == pytest.approx(np.exp(z / 2))
    # Standardised by the reference (training) episodes' returns.
    ref = [episode([0.0]), episode([2.0])]
    assert feedback_weights(episodes, reference=ref) == pytest.approx(np.exp([-1.0, 1.0, 3.0]))
    assert feedback_weights(episodes, "none").tolist() == [1.0, 1.0, 1.0]
    assert feedback_weights([episode([1.0]), episode([1.0])]).tolist() == [1.0, 1.0]
    # Outcome: the last `resolved` said decides, else the mean rating >= 4, else return > 0.
    said = [json.dumps([{"resolved": True}]), json.dumps([]), json.dumps([{"resolved": False}])]
    rated = [json.dumps([{"rating": 5}]), json.dumps([{"rating": 2, "reward": 1.0}])]
    good_rating = [json.dumps([{"rating": 4}]), "[]"]
    cases = [
        (episode([5.0, 5.0], said), False),
        (episode([-1.0, -1.0], said[:2]), True),
        (episode([5.0], rated), False),
        (episode([-3.0], good_rating), True),
        (episode([0.5]), True),
        (episode([0.0], ["[]", "[]"]), False),
    ]
    assert [episode_outcome(e) for e, _ in cases] == [want for _, want in cases]
    assert feedback_weights([e for e, _ in cases], "outcome", negative_weight=0.25).tolist() == [
        0.25,
        1.0,
        0.25,
        1.0,
        1.0,
        0.25,
    ]
    assert feedback_weights(episodes, lambda e: len(e)).tolist() == [1.0, 2.0, 1.0]
    with pytest.raises(DatasetError, match=re.escape("feedback_weight='clicks' is unknown")):
        feedback_weights(episodes, "clicks")
    with pytest.raises(DatasetError, match=re.escape("returned a negative or non-finite weight")):
        feedback_weights(episodes, lambda e: -1.0)
    with pytest.raises(DatasetError, match=re.escape("infos['feedback'][0] is not JSON")):
        episode_outcome(episode([1.0], ["{oops", "[]"]))


def test_advantage_weights_on_a_hand_computed_case():
    returns = np.array([1.0, 0.0, 5.0, -2.0, 1e6])
    values = np.array([0.0, 0.5, 0.0, 0.0, 0.0])
    weights = advantage_weights(returns, values, beta=2.0, max_weight=10.0)
    expected = [math.exp(0.5), math.exp(-0.25), 10.0, math.exp(-1.0), 10.0]  # e^2.5 > 10: capped
    assert weights == pytest.approx(expected)
    assert advantage_weights(returns, values, beta=1.0, max_weight=20.0)[2] == pytest.approx(20.0)


def test_logged_returns_are_discounted_scaled_returns_to_go(logs):
    model = make_ppo(CS, env_kwargs=CS_KWARGS, n_envs=1, device="cpu", reward_scale=0.5, **TINY)
    rewards = np.array([1.0, -1.0, 2.0])
    first = logs[0][0].observations[0]
    short = Episode(
        7,
        [first] * 4,
        np.array([0, 1, 2]),
        rewards,
        True,
        False,
        np.full((3, 14), 1 / 14),
        np.full(3, 1 / 14),
        {"action_mask": np.array([np.ones(14), np.eye(14)[5], np.ones(14), np.ones(14)])},
    )
    env = make_env(CS, CS_KWARGS)
    data = logged_decisions([short], model, env, gamma=0.5)
    env.close()
    g2 = 0.5 * 2.0
    g1 = 0.5 * -1.0 + 0.5 * g2
    g0 = 0.5 * 1.0 + 0.5 * g1
    assert data.returns.tolist() == pytest.approx([g0, g1, g2])
    assert data.actions.tolist() == [0, 1, 2] and len(data) == 3
    # The logged mask forbade action 1 at step 1: left out of the cross-entropy.
    assert data.allowed.tolist() == [True, False, True]
    assert set(data.observations) == set(model.observation_space.spaces)


def test_lambda_returns_on_a_hand_computed_case(logs):
    model = make_ppo(CS, env_kwargs=CS_KWARGS, n_envs=1, device="cpu", reward_scale=0.5, **TINY)
    first = logs[0][0].observations[0]

    def episode(i, rewards):
        n = len(rewards)
        return Episode(
            i,
            [first] * (n + 1),
            np.zeros(n, dtype=int),
            np.array(rewards),
            True,
            False,
            np.full((n, 14), 1 / 14),
            np.full(n, 1 / 14),
        )

    env = make_env(CS, CS_KWARGS)
    data = logged_decisions([episode(0, [2.0, -4.0]), episode(1, [6.0])], model, env, gamma=0.5)
    env.close()
    assert data.rewards.tolist() == [1.0, -2.0, 3.0]  # scaled by reward_scale
    assert data.next_index.tolist() == [1, -1, -1] and data.gamma == 0.5
    values = np.array([10.0, 20.0, 30.0])
    # lambda 0: r + gamma V(next), never past an episode's end.
    assert lambda_returns(data, values, 0.0).tolist() == pytest.approx([1 + 0.5 * 20, -2, 3])
    # lambda 1: the Monte-Carlo returns, whatever the values.
    assert lambda_returns(data, values, 1.0).tolist() == pytest.approx(data.returns.tolist())
    # lambda 0.5: V + delta_0 + gamma lambda delta_1.
    d0, d1 = 1 + 0.5 * 20 - 10, -2 - 20
    assert lambda_returns(data, values, 0.5)[0] == pytest.approx(10 + d0 + 0.25 * d1)
    bare = dataclasses.replace(data, rewards=None)
    with pytest.raises(OfflineLearningError, match=re.escape("awr_lambda < 1 needs each")):
        lambda_returns(bare, values, 0.0)
    with pytest.raises(ConfigError, match=re.escape("offline.awr_lambda = 1.5 is out of range")):
        OfflineConfig(method="awr", awr_lambda=1.5)


def test_awr_prior_init_weighs_by_the_start_policy_over_the_logger(logs):
    logged, _ = logs
    model = make_ppo(CS, env_kwargs=CS_KWARGS, n_envs=1, device="cpu", **TINY)
    env = make_env(CS, CS_KWARGS)
    data = logged_decisions(logged[:3], model, env, gamma=0.99)
    env.close()
    mu = np.concatenate([e.propensities for e in logged[:3]])
    assert data.propensities.tolist() == pytest.approx(mu.tolist())
    start = logged_action_probabilities(model.policy, data)
    assert np.all((start > 0) & (start <= 1))
    ratios = prior_ratios(data, start, max_ratio=3.0)
    assert ratios.tolist() == pytest.approx(np.minimum(start / mu, 3.0).tolist())
    with pytest.raises(OfflineLearningError, match=re.escape("awr_prior='init' needs the")):
        prior_ratios(dataclasses.replace(data, propensities=None), start, max_ratio=3.0)
    with pytest.raises(OfflineLearningError, match=re.escape("awr_prior='both' is unknown")):
        OfflineConfig(method="awr", awr_prior="both")
    with pytest.raises(OfflineLearningError, match=re.escape("pass init= (--init MODEL)")):
        learn_from_dataset(logged, env_id=CS, env_kwargs=CS_KWARGS, method="awr", awr_prior="init")


def test_awr_with_the_init_prior_learns_and_records_it(logs, v1):
    logged, _ = logs
    result = learn_from_dataset(
        logged, init=v1, method="awr", awr_prior="init", awr_lambda=0.0, epochs=2, batch_size=32
    )
    assert result.settings["awr_prior"] == "init" and result.settings["awr_lambda"] == 0.0
    assert result.val_before is not None and result.val_scores is not None


def test_awr_fits_the_critic_offline_then_weighs_by_advantage(logs, plain):
    logged, held_out = logs
    result = learn_from_dataset(logged, env_id=CS, env_kwargs=CS_KWARGS, method="awr", **QUICK)
    first, last = result.losses[0], result.losses[-1]
    assert set(first) == {"policy_loss", "value_loss", "mean_weight", "clipped_share"}
    assert last["value_loss"] < first["value_loss"]
    assert result.val_scores is not None and result.val_before is not None
    assert result.settings["method"] == "awr" and result.settings["awr_beta"] == 1.0
    # The random logger's episodes have negative advantages: AWR follows the expert more than
    # plain cloning does.
    assert _expert_agreement(result.model, held_out) > _expert_agreement(plain.model, held_out)
    with pytest.raises(OfflineLearningError, match=re.escape("method='awr' weighs decisions")):
        env = make_env(CS, CS_KWARGS)
        data = logged_decisions(logged[:2], result.model, env, gamma=0.99)
        fit_offline(result.model, data, OfflineConfig(method="awr"), weights=np.ones(len(data)))


def test_slates_learn_from_the_whole_ordered_slate():
    env = gym.make(REC, **REC_KWARGS)
    rng = np.random.default_rng(0)
    episodes = []
    for seed in range(6):
        observation, _ = env.reset(seed=seed)
        observations, actions, rewards = [observation], [], []
        done = False
        while not done:
            slate = rng.choice(4, size=2, replace=False)
            observation, reward, terminated, truncated, _ = env.step(slate)
            observations.append(observation)
            actions.append(slate)
            rewards.append(reward)
            done = terminated or truncated
        n = len(actions)
        episodes.append(
            Episode(
                seed,
                observations,
                np.array(actions),
                np.array(rewards),
                terminated,
                truncated,
                np.full((n, 16), 1 / 12),
                np.full(n, 1 / 12),
            )
        )
    env.close()
    for method in ("bc", "awr"):
        result = learn_from_dataset(
            episodes, env_id=REC, env_kwargs=REC_KWARGS, method=method, epochs=2, settings=TINY
        )
        # log pi of an ordered slate of 2 distinct positions out of 4: about log(1/12) at first.
        assert result.losses[0]["policy_loss"] == pytest.approx(math.log(12), abs=0.3)
        assert 0 <= result.val_scores.agreement <= 1


def test_the_saved_model_loads_acts_and_records_how_it_was_learnt(logs, v1, tmp_path):
    logged, _ = logs
    result = learn_from_dataset(
        logged[:20], init=v1, out=tmp_path / "v2", epochs=2, feedback_weight="outcome"
    )
    assert result.model_path == tmp_path / "v2"
    model = load_model(result.model_path, device="cpu")
    offline = model.rlagent_spec["offline"]
    assert offline["method"] == "bc" and offline["init"] == str(v1)
    assert offline["env_id"] == CS and offline["episodes"] == 16
    scores = evaluate(str(result.model_path), CS, env_kwargs=CS_KWARGS, episodes=2)
    assert scores.episodes == 2 and np.isfinite(scores.mean_return)
    # The initial model's weights moved; it is the same architecture.
    before, after = read_policy_state(v1), read_policy_state(result.model_path)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(FileExistsError, match=re.escape("exists and is not empty; pass overwrite")):
        learn_from_dataset(logged[:4], init=v1, out=tmp_path / "v2", epochs=1)
    again = learn_from_dataset(logged[:4], init=v1, out=tmp_path / "v2", epochs=1, overwrite=True)
    assert again.model_path == tmp_path / "v2"


def test_ppo_starts_from_the_learnt_weights(logs, v1, tmp_path, monkeypatch):
    from rlagent.training import load_config, train

    logged, _ = logs
    learnt = learn_from_dataset(logged[:10], init=v1, out=tmp_path / "v2", epochs=1)
    seen = {}
    original = rlagent.agents.text_ppo.TextPPO.learn

    def learn(self, *args, **kwargs):
        seen.update({k: v.detach().clone() for k, v in self.policy.state_dict().items()})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rlagent.agents.text_ppo.TextPPO, "learn", learn)
    settings = dict(
        env_kwargs=CS_KWARGS,
        encoder="tiny-random",
        encoder_layers=[-1],
        max_length=16,
        n_envs=1,
        ppo={"n_steps": 8, "batch_size": 8, "n_epochs": 1},
        n_timesteps=8,
        eval_freq=0,
        eval_episodes=1,
        checkpoint_freq=0,
        baseline_episodes=0,
        device="cpu",
    )
    train(load_config(CS, **settings, init_model=str(learnt.model_path)), tmp_path / "run")
    saved = read_policy_state(learnt.model_path)
    assert seen.keys() == saved.keys()
    assert all(torch.equal(seen[k], saved[k]) for k in saved)
    # Another env's model: refused before anything is trained, the run directory removed.
    rec = save_model(
        make_ppo(REC, env_kwargs=REC_KWARGS, n_envs=1, device="cpu", **TINY), tmp_path / "rec"
    )
    with pytest.raises(
        ModelEnvMismatchError,
        match=re.escape(
            f"The initial model {rec} does not fit this run: it was trained on {REC}, this run "
            f"trains on {CS}; start from a model of {CS}, or train on --env {REC}."
        ),
    ):
        train(load_config(CS, **settings, init_model=str(rec)), tmp_path / "run2")
    assert not (tmp_path / "run2").exists()
    # The same env read differently (two dialogue segments, not three).
    other = {**CS_KWARGS, "history": 2}
    short = save_model(
        make_ppo(CS, env_kwargs=other, n_envs=1, device="cpu", **TINY), tmp_path / "short"
    )
    with pytest.raises(
        InitModelError,
        match=re.escape(
            f"The initial model {short} does not fit this run: its observations are laid out "
            "differently (entries ['dialogue_"
        ),
    ):
        train(load_config(CS, **settings, init_model=str(short)), tmp_path / "run3")


def test_errors_say_what_was_wrong(logs, v1, tmp_path):
    logged, _ = logs
    with pytest.raises(
        DatasetError,
        match=re.escape("No logged decisions in the episodes given; log some episodes"),
    ):
        learn_from_dataset([], env_id=CS)
    with pytest.raises(
        OfflineLearningError,
        match=re.escape(
            "method='ppo' is unknown; expected 'bc' (behaviour cloning weighted by feedback) or "
            "'awr' (advantage-weighted regression)."
        ),
    ):
        learn_from_dataset(logged, env_id=CS, method="ppo")
    rec = save_model(
        make_ppo(REC, env_kwargs=REC_KWARGS, n_envs=1, device="cpu", **TINY), tmp_path / "rec"
    )
    with pytest.raises(
        ModelEnvMismatchError,
        match=re.escape(
            f"The dataset was logged on {CS} but the initial model {rec} was trained on {REC}; "
            f"learn from logs of {REC}, or start from a model of {CS}"
        ),
    ):
        learn_from_dataset(logged, env_id=CS, init=rec)
    with pytest.raises(DatasetError, match=re.escape("pass env_id= (--env ID)")):
        learn_from_dataset(logged)
    with pytest.raises(
        DatasetError,
        match=re.escape("Observation 0 of episode 0 does not fit the env's observation space"),
    ):
        learn_from_dataset(logged[:3], env_id=CS, env_kwargs={"history": 4}, settings=TINY)
    bad = [e for e in logged if not episode_outcome(e)][:5]
    with pytest.raises(DatasetError, match=re.escape("Every training episode has weight 0")):
        learn_from_dataset(bad, init=v1, feedback_weight="outcome", epochs=1)
    with pytest.raises(OfflineLearningError, match=re.escape("(--init) starts from a saved one")):
        learn_from_dataset(logged, init=v1, settings=TINY)
