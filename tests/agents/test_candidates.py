from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution

from rlagent.agents import (
    AgentConfig,
    load,
    make_ppo,
    make_vec_env,
    save_model,
    wrap_for_model,
)
from rlagent.agents.candidates import CandidateLayoutError, candidate_layout
from rlagent.agents.slate import SlateDistribution
from rlagent.planning import PolicyEvaluator

SMALL = dict(n_steps=32, batch_size=32, n_epochs=2)
CANDIDATES = {"candidates": "candidates"}
# The generic agent, not the bundled envs' own settings.
PLAIN = AgentConfig()


class PickGoodEnv(gym.Env):
    """Four items, two of them good, at random positions; a slate of two earns one per good item."""

    good_text, bad_text = "great item", "poor item"

    observation_space = spaces.Dict(
        {
            "candidates": spaces.Tuple([spaces.Text(20)] * 4),
            "candidate_score": spaces.Box(0.0, 1.0, (4,), np.float32),
        }
    )
    action_space = spaces.MultiDiscrete([4, 4])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.good = self.np_random.permutation(4)[:2]
        texts = [self.bad_text] * 4
        for pos in self.good:
            texts[pos] = self.good_text
        return {"candidates": tuple(texts), "candidate_score": np.zeros(4, np.float32)}, {}

    def step(self, action):
        slate = set(int(a) for a in action)
        reward = float(len(slate & set(self.good.tolist())))
        obs = {"candidates": ("",) * 4, "candidate_score": np.zeros(4, np.float32)}
        return obs, reward, True, False, {}


def _rec(**kwargs):
    return make_ppo(
        "rlagent/Recommendation-v0",
        config=PLAIN,
        encoder="tiny-random",
        n_envs=1,
        seed=0,
        max_length=12,
        policy_kwargs=CANDIDATES,
        **SMALL,
        **kwargs,
    )


def test_slate_env_gets_a_slate_distribution_and_the_popularity_feature():
    model = _rec()
    policy = model.policy
    assert isinstance(policy.action_dist, SlateDistribution)
    layout = policy.candidate_layout
    assert (layout.n_candidates, layout.slots) == (10, 2)
    assert layout.feature_keys == ("candidate_popularity",)
    obs = model.env.reset()
    tensor = policy.obs_to_tensor(obs)[0]
    features = policy.extract_features(tensor)
    extractor = policy.features_extractor
    # Candidate 3's columns are its own segment embedding, then its popularity.
    ids = tensor["candidates_input_ids"][0, 3:4]
    mask = tensor["candidates_attention_mask"][0, 3:4]
    columns = torch.tensor(layout.columns[3])
    picked = features[0, columns]
    torch.testing.assert_close(picked[:-1], extractor.encode_segments(ids, mask)[0])
    assert picked[-1].item() == pytest.approx(float(obs["candidate_popularity"][0, 3]))
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (1, 2) and actions[0, 0] != actions[0, 1]


def test_single_item_slates_use_a_categorical_over_candidates():
    model = _rec(env_kwargs={"slate_size": 1})
    assert isinstance(model.policy.action_dist, CategoricalDistribution)
    assert model.policy.candidate_layout.slots == 1
    obs = model.env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (1,) and 0 <= int(action[0]) < 10


class PickPoorEnv(PickGoodEnv):
    good_text, bad_text = "poor item", "great item"


@pytest.mark.parametrize("env_cls", [PickGoodEnv, PickPoorEnv])
def test_candidate_policy_learns_a_slate_and_survives_save_and_load(env_cls, tmp_path):
    # Same seed, same initial scorer: it cannot already prefer both texts, so reaching the
    # best slate for both envs means the scorer learned which text pays.
    model = make_ppo(
        env_cls,
        encoder="tiny-random",
        n_envs=4,
        seed=1,
        max_length=8,
        learning_rate=3e-3,
        policy_kwargs=CANDIDATES,
        **SMALL,
    )
    vec = make_vec_env(env_cls, n_envs=1, seed=100, encoder="tiny-random", max_length=8)

    def mean_reward(m, episodes=50):
        total = 0.0
        for _ in range(episodes):
            obs = vec.reset()
            action, _ = m.predict(obs, deterministic=True)
            total += float(vec.step(action)[1][0])
        return total / episodes

    model.learn(3072)
    assert mean_reward(model) >= 1.8  # random slates earn 1.0, the best 2.0
    save_model(model, tmp_path / "slate")
    loaded = load(tmp_path / "slate", env=env_cls())
    assert loaded.policy.candidates == "candidates"
    obs = vec.reset()
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )


class PickOneEnv(PickGoodEnv):
    """One good item among four; each poor item shown costs 0.6: the best slate is one item."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        self.good = self.good[:1]
        texts = [self.bad_text] * 4
        texts[int(self.good[0])] = self.good_text
        return {**obs, "candidates": tuple(texts)}, info

    def step(self, action):
        slate = set(int(a) for a in action)
        good = int(self.good[0]) in slate
        reward = float(good) - 0.6 * len(slate - {int(self.good[0])})
        obs = {"candidates": ("",) * 4, "candidate_score": np.zeros(4, np.float32)}
        return obs, reward, True, False, {}


def test_shorter_slates_learn_to_show_one_item_alone(tmp_path):
    kwargs = dict(encoder="tiny-random", n_envs=4, seed=1, max_length=8, learning_rate=3e-3)
    model = make_ppo(
        PickOneEnv, policy_kwargs={**CANDIDATES, "shorter_slates": True}, **kwargs, **SMALL
    )
    assert model.policy.action_dist.stop and model.policy.action_net.stop is not None
    vec = make_vec_env(PickOneEnv, n_envs=1, seed=100, encoder="tiny-random", max_length=8)

    def mean_reward(m, episodes=50):
        total = 0.0
        for _ in range(episodes):
            obs = vec.reset()
            total += float(vec.step(m.predict(obs, deterministic=True)[0])[1][0])
        return total / episodes

    model.learn(3072)
    assert mean_reward(model) >= 0.9  # a two-item slate earns at most 0.4
    save_model(model, tmp_path / "one")
    loaded = load(tmp_path / "one", env=PickOneEnv())
    assert loaded.policy.shorter_slates
    obs = vec.reset()
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
    )
    with pytest.raises(CandidateLayoutError, match="needs a slate action space"):
        make_ppo(
            "rlagent/Recommendation-v0",
            config=PLAIN,
            encoder="tiny-random",
            n_envs=1,
            max_length=8,
            env_kwargs={"slate_size": 1},
            policy_kwargs={**CANDIDATES, "shorter_slates": True},
        )
    with pytest.raises(CandidateLayoutError, match="needs the candidate-scoring head"):
        make_ppo(
            "rlagent/Recommendation-v0",
            config=PLAIN,
            encoder="tiny-random",
            n_envs=1,
            max_length=8,
            policy_kwargs={"shorter_slates": True},
        )


def test_planner_priors_from_a_slate_policy_cover_every_ordered_slate():
    model = _rec()
    env = gym.make("rlagent/Recommendation-v0")
    env.reset(seed=0)
    tokenized = wrap_for_model(env.unwrapped, model)
    evaluator = PolicyEvaluator(
        model, lambda state: env.unwrapped.observe(), preprocess=tokenized.observation
    )
    priors, _ = evaluator.evaluate(env.unwrapped.get_state(), np.random.default_rng(0))
    priors = np.asarray(priors)
    assert priors.shape == (100,) and priors.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(priors[::11] == 0.0)  # a slate never shows one item twice


def test_wrong_spaces_are_refused_with_the_reason():
    with pytest.raises(CandidateLayoutError, match=re.escape("'items' is not a text entry")):
        _rec_layout(key="items")
    with pytest.raises(CandidateLayoutError, match=re.escape("needs a Discrete(10) or")):
        _rec_layout(action_space=spaces.Discrete(11))
    with pytest.raises(CandidateLayoutError, match=re.escape("'features' must be a numeric")):
        _rec_layout(features=["features"])
    with pytest.raises(CandidateLayoutError, match=re.escape("'dialogue' segments needs")):
        make_ppo(
            "rlagent/CustomerService-v0",
            config=PLAIN,
            encoder="tiny-random",
            n_envs=1,
            max_length=8,
            policy_kwargs={"candidates": "dialogue"},
        )


def _rec_layout(key="candidates", action_space=None, features=None):
    space = spaces.Dict({})
    text = [("candidates", 10), ("history", 3)]
    numeric = [("candidate_popularity", 10), ("features", 5)]
    return candidate_layout(
        space, action_space or spaces.MultiDiscrete([10, 10]), text, numeric, 8, key, features
    )


def test_reward_scale_changes_what_ppo_sees_not_what_monitor_reports():
    vec = make_vec_env(
        PickGoodEnv, n_envs=1, seed=3, encoder="tiny-random", max_length=8, reward_scale=0.5
    )
    vec.reset()
    _, reward, _, info = vec.step(np.array([[0, 1]]))
    assert reward[0] == pytest.approx(0.5 * info[0]["episode"]["r"])
    with pytest.raises(ValueError, match=re.escape("reward_scale must be a finite number > 0")):
        make_vec_env(PickGoodEnv, encoder="tiny-random", reward_scale=0.0)
