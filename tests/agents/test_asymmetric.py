"""The privileged (asymmetric) critic: the critic reads hidden features, the actor never does."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import rlagent
from rlagent.agents import make_ppo, observation_function
from rlagent.agents.asymmetric import CriticOnlyError
from rlagent.evaluation import make_agent
from rlagent.planning import make_planning_agent
from rlagent.planning.belief import hide
from rlagent.training import TrainConfig, load_config
from rlagent.wrappers import PRIVILEGED_KEY, PrivilegedFeaturesError, PrivilegedObservation

SMALL = dict(n_steps=32, batch_size=32, n_epochs=2)
REC = dict(n_candidates=4, slate_size=2)


class HiddenCoinEnv(gym.Env):
    """A hidden coin decides whether the one-step episode pays 0 or 10; nothing observed tells.

    ``privileged_features()`` exposes the coin, so only a privileged critic can predict the
    return.
    """

    observation_space = spaces.Dict(
        {"text": spaces.Text(20), "features": spaces.Box(0.0, 1.0, (1,), np.float32)}
    )
    action_space = spaces.Discrete(2)
    privileged_space = spaces.Box(0.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.coin = int(self.np_random.integers(2))
        return self._obs(), {}

    def _obs(self):
        return {"text": "hello", "features": np.zeros(1, np.float32)}

    def privileged_features(self, state=None):
        return np.array([self.coin], np.float32)

    def step(self, action):
        return self._obs(), 10.0 * self.coin, True, False, {}


def _outputs(model, obs):
    tensor, _ = model.policy.obs_to_tensor(obs)
    with torch.no_grad():
        probs = model.policy.get_distribution(tensor).distribution.probs
        value = model.policy.predict_values(tensor)
    return probs.numpy(), float(value.ravel()[0])


def test_privileged_critic_learns_the_hidden_return_and_the_actor_ignores_it():
    model = make_ppo(
        HiddenCoinEnv,
        encoder="tiny-random",
        n_envs=2,
        seed=0,
        max_length=8,
        privileged_critic=True,
        learning_rate=3e-3,
        **SMALL,
    )
    assert model.policy.critic_only == [PRIVILEGED_KEY]
    model.learn(1024)
    env = HiddenCoinEnv()
    env.reset(seed=0)
    convert = observation_function(env, model)
    outputs = []
    for coin in (0, 1):
        env.coin = coin
        outputs.append(
            _outputs(model, convert({**env._obs(), PRIVILEGED_KEY: env.privileged_features()}))
        )
    (probs_tails, value_tails), (probs_heads, value_heads) = outputs
    assert value_heads - value_tails > 5.0, (value_tails, value_heads)
    np.testing.assert_array_equal(probs_tails, probs_heads)


def test_recommendation_privileged_critic_round_trip(tmp_path):
    model = make_ppo(
        "rlagent/Recommendation-v0",
        encoder="tiny-random",
        n_envs=1,
        seed=0,
        max_length=12,
        env_kwargs=REC,
        policy_kwargs={"candidates": "candidates"},
        privileged_critic=True,
        reward_scale=0.01,
        **SMALL,
    )
    model.learn(32)
    rlagent.save_model(model, tmp_path / "m")
    loaded = rlagent.load(tmp_path / "m")
    assert loaded.rlagent_spec["privileged_critic"] is True
    assert loaded.policy.critic_only == [PRIVILEGED_KEY]

    env = gym.make("rlagent/Recommendation-v0", **REC)
    obs, _ = env.reset(seed=3)
    convert = observation_function(env.unwrapped, loaded)
    zeros = convert(obs)  # acting: the entry is filled with zeros
    assert np.all(zeros[PRIVILEGED_KEY] == 0.0)
    real = convert({**obs, PRIVILEGED_KEY: env.unwrapped.privileged_features()})
    probs_zero, value_zero = _outputs(loaded, zeros)
    probs_real, value_real = _outputs(loaded, real)
    np.testing.assert_array_equal(probs_zero, probs_real)
    assert value_zero != value_real

    action = make_agent(loaded, env).act(obs)
    assert env.action_space.contains(np.asarray(action))
    for oracle in (False, True):
        agent = make_planning_agent(loaded, env, simulations=8, seed=0, oracle=oracle)
        agent.reset(seed=0)
        assert env.action_space.contains(np.asarray(agent.act(obs)))
    with_env = rlagent.load(tmp_path / "m", env="rlagent/Recommendation-v0")
    assert PRIVILEGED_KEY in with_env.get_env().observation_space.spaces


def test_planner_feeds_the_critic_each_simulated_budget():
    env = gym.make("rlagent/Recommendation-v0", **REC)
    model = make_ppo(
        env.unwrapped,
        encoder="tiny-random",
        n_envs=1,
        seed=0,
        max_length=12,
        policy_kwargs={"candidates": "candidates"},
        privileged_critic=True,
        **SMALL,
    )
    env.reset(seed=0)
    agent = make_planning_agent(model, env, simulations=4, seed=0, oracle=True)
    state = env.unwrapped.get_state()
    seen = agent.evaluator.observe(state)[PRIVILEGED_KEY]
    np.testing.assert_allclose(seen, [state.budget / env.unwrapped.user_config.budget])
    half = replace(state, budget=state.budget / 2)
    np.testing.assert_allclose(agent.evaluator.observe(half)[PRIVILEGED_KEY], seen / 2)


def test_recommendation_privileged_features():
    env = gym.make("rlagent/Recommendation-v0", **REC).unwrapped
    with pytest.raises(Exception, match="reset"):
        env.privileged_features()
    env.reset(seed=0)
    np.testing.assert_allclose(env.privileged_features(), [1.0])
    assert env.privileged_space.contains(env.privileged_features())
    with pytest.raises(TypeError, match="sample_hidden"):
        env.privileged_features(hide(env.get_state()))


def test_customer_service_privileged_features():
    env = gym.make("rlagent/CustomerService-v0").unwrapped
    _, info = env.reset(seed=0, options={"mood": "angry", "vague": True, "patience": 5})
    group = np.zeros(len(env.groups))
    group[env.groups.index(info["group"])] = 1
    np.testing.assert_allclose(env.privileged_features(), [0, 0, 1, 0, 5 / env.max_turns, *group])
    env.step(env.ASK_CLARIFY)  # the answer is a specific request; one turn of patience spent
    features = env.privileged_features()
    np.testing.assert_allclose(features[3:5], [1, 4 / env.max_turns])
    np.testing.assert_allclose(features[5:], group)
    np.testing.assert_array_equal(env.privileged_features(env.get_state()), features)
    assert env.privileged_space.contains(features)
    with pytest.raises(TypeError, match="sample_hidden"):
        env.privileged_features(hide(env.get_state()))


class NoFeaturesEnv(HiddenCoinEnv):
    privileged_features = None


def test_privileged_wrapper_errors():
    with pytest.raises(PrivilegedFeaturesError, match="privileged_features"):
        PrivilegedObservation(NoFeaturesEnv())
    rec = gym.make("rlagent/Recommendation-v0", **REC)
    wrapped = PrivilegedObservation(rec)
    obs, _ = wrapped.reset(seed=0)
    assert wrapped.observation_space.contains(obs)
    with pytest.raises(PrivilegedFeaturesError, match="already has"):
        PrivilegedObservation(wrapped)


def test_critic_only_must_name_a_numeric_entry():
    with pytest.raises(CriticOnlyError, match="not a numeric observation entry"):
        make_ppo(
            "rlagent/Recommendation-v0",
            encoder="tiny-random",
            n_envs=1,
            max_length=12,
            env_kwargs=REC,
            policy_kwargs={"critic_only": ["budget"]},
            **SMALL,
        )


def test_train_config_accepts_privileged_critic():
    config = TrainConfig(env_id="rlagent/Recommendation-v0", privileged_critic=True)
    assert config.to_dict()["privileged_critic"] is True


def test_bundled_recommendation_config_trains_a_privileged_critic():
    config = load_config("rlagent/Recommendation-v0")
    assert config.privileged_critic is True
    assert config.reward_shaping is True and config.expected_rewards is True
    assert config.policy_kwargs["shorter_slates"] is True
