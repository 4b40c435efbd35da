"""Potential-based reward shaping with a hidden potential: training wrapper and planning model."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from toyenv import KeywordEnv

import rlagent
from rlagent.agents import make_ppo, make_vec_env
from rlagent.planning import EnvModel, make_planning_agent
from rlagent.planning.belief import hide
from rlagent.planning.model import PlanningStateError
from rlagent.training import TrainConfig
from rlagent.wrappers import ExpectedReward, PotentialShaping, RewardShapingError

REC = dict(n_candidates=4, slate_size=2)
SMALL = dict(n_steps=32, batch_size=32, n_epochs=2)


def _rec_vec(**rewards):
    """A one-env tokenized Recommendation VecEnv with the given reward settings."""
    return make_vec_env(
        "rlagent/Recommendation-v0",
        n_envs=1,
        seed=0,
        env_kwargs=REC,
        encoder="tiny-random",
        max_length=8,
        **rewards,
    )


def _play(env, seed, steps=None):
    """Random slates until the episode ends; the summed rewards and the last info."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    total, done, n = 0.0, False, 0
    while not done and (steps is None or n < steps):
        _, reward, terminated, truncated, info = env.step(rng.integers(0, 4, 2))
        total += reward
        done = terminated or truncated
        n += 1
    return total, info, terminated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shaped_return_is_the_return_minus_the_start_potential(seed):
    env = PotentialShaping(gym.make("rlagent/Recommendation-v0", **REC))
    shaped, info, terminated = _play(env, seed)
    assert terminated
    budget = env.unwrapped.user_config.budget
    watched = info["episode_metrics"]["watch_time"]
    assert shaped == pytest.approx(watched - budget, abs=1e-9)
    assert watched != pytest.approx(budget)  # the episode really used its refunds


def test_a_shaped_step_is_the_refund_or_the_no_click_cost():
    env = PotentialShaping(gym.make("rlagent/Recommendation-v0", **REC))
    base = env.unwrapped
    env.reset(seed=4)
    config = base.user_config
    seen = set()
    for step in range(40):
        before = base.get_state()
        slate = np.array([step % 4, (step + 1) % 4])
        _, reward, terminated, _, info = env.step(slate)
        clicked = info["clicked"]
        if clicked < 0:
            expected = -config.no_click_cost
        else:
            item = before.candidates[int(slate[clicked])]
            expected = config.item_minutes * config.refund_rate * base.catalog.quality[item]
        assert reward == pytest.approx(expected)
        seen.add(clicked >= 0)
        if terminated:
            break
    assert seen == {True, False}


class PlainEnv(gym.Env):
    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)


class StatefulEnv(PlainEnv):
    def get_state(self):
        return 0

    def set_state(self, state):
        pass


def test_shaping_needs_a_potential():
    with pytest.raises(RewardShapingError, match="shaping_potential"):
        PotentialShaping(PlainEnv())
    with pytest.raises(RewardShapingError, match="shaping_potential"):
        make_ppo(KeywordEnv, encoder="tiny-random", n_envs=1, reward_shaping=True)
    env = gym.make("rlagent/Recommendation-v0", **REC).unwrapped
    with pytest.raises(Exception, match="reset"):
        env.shaping_potential()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="sample_hidden"):
        env.shaping_potential(hide(env.get_state()))


def _random_episode(env, seed):
    """Random actions from ``seed`` until the episode ends: rewards, mood before each step, end."""
    base = env.unwrapped
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    rewards, moods, done, terminated = [], [], False, False
    while not done:
        moods.append(base.get_state().mood)
        _, reward, terminated, truncated, _ = env.step(int(rng.integers(0, base.action_space.n)))
        rewards.append(reward)
        done = terminated or truncated
    return rewards, moods + [base.get_state().mood], terminated


@pytest.mark.parametrize("seed", range(8))
def test_customer_service_shaping_pays_mood_changes_and_keeps_the_return(seed):
    rc = gym.make("rlagent/CustomerService-v0").unwrapped.reward_config
    plain, moods, terminated = _random_episode(gym.make("rlagent/CustomerService-v0"), seed)
    shaped, _, _ = _random_episode(PotentialShaping(gym.make("rlagent/CustomerService-v0")), seed)
    bonus = [rc.success * rc.mood_scale[m] for m in moods]
    for t in range(len(plain) - (1 if terminated else 0)):  # steps that did not end it
        assert shaped[t] == pytest.approx(plain[t] + bonus[t + 1] - bonus[t])
    if terminated:
        assert sum(shaped) == pytest.approx(sum(plain) - bonus[0])


def test_customer_service_apology_to_an_angry_customer_pays_at_once():
    env = PotentialShaping(gym.make("rlagent/CustomerService-v0"))
    base = env.unwrapped
    rc = base.reward_config
    env.reset(seed=0, options={"mood": "angry", "patience": 10})
    _, reward, *_ = env.step(base.APOLOGISE)
    assert reward == pytest.approx(rc.turn + rc.success * (rc.mood_scale[1] - rc.mood_scale[2]))
    _, reward, *_ = env.step(base.APOLOGISE)
    _, calm_apology, *_ = env.step(base.APOLOGISE)  # calm now: an apology changes nothing
    assert reward > 0 and calm_apology == pytest.approx(rc.turn)
    group = base.bank.intent_group[base.bank.intent_index[base.get_state().intent]]
    _, reward, terminated, *_ = env.step(group)
    assert terminated and reward == pytest.approx(rc.turn)  # the bonus was paid on the way
    assert base.shaping_potential(base.get_state()) == pytest.approx(rc.success)


def test_vec_env_learns_from_shaped_rewards_but_reports_the_envs_own(tmp_path):
    vec = _rec_vec(reward_shaping=True)
    vec.reset()
    rng = np.random.default_rng(0)
    learned, returns = 0.0, []
    while not returns:
        _, rewards, dones, infos = vec.step(rng.integers(0, 4, (1, 2)))
        learned += float(rewards[0])
        if dones[0]:
            returns.append(infos[0]["episode"]["r"])
    assert learned == pytest.approx(returns[0] - 200.0, abs=1e-3)


def test_shaped_model_round_trip_and_planning(tmp_path):
    model = make_ppo(
        "rlagent/Recommendation-v0",
        encoder="tiny-random",
        n_envs=1,
        seed=0,
        max_length=12,
        env_kwargs=REC,
        policy_kwargs={"candidates": "candidates"},
        privileged_critic=True,
        reward_shaping=True,
        **SMALL,
    )
    model.learn(32)
    rlagent.save_model(model, tmp_path / "m")
    loaded = rlagent.load(tmp_path / "m")
    assert loaded.rlagent_spec["reward_shaping"] is True
    env = gym.make("rlagent/Recommendation-v0", **REC)
    obs, _ = env.reset(seed=1)
    for oracle in (False, True):
        agent = make_planning_agent(loaded, env, simulations=8, seed=0, oracle=oracle)
        assert agent.env_model.reward_shaping is True
        agent.reset(seed=0)
        assert env.action_space.contains(np.asarray(agent.act(obs)))
    plain = make_planning_agent(None, env, simulations=4, seed=0)
    assert plain.env_model.reward_shaping is False


def test_env_model_shapes_rewards_with_each_states_potential():
    env = gym.make("rlagent/Recommendation-v0", **REC)
    env.reset(seed=2)
    shaped = EnvModel(env, reward_shaping=True)
    plain = EnvModel(env)
    state = env.unwrapped.get_state()
    for seed in range(20):
        s1, r1, d1 = shaped.step(state, 5, np.random.default_rng(seed))
        s2, r2, d2 = plain.step(state, 5, np.random.default_rng(seed))
        assert (s1, d1) == (s2, d2)
        assert r1 == pytest.approx(r2 + s2.budget - state.budget)
    with pytest.raises(PlanningStateError, match="shaping_potential"):
        EnvModel(StatefulEnv(), reward_shaping=True)


def test_customer_service_potential_needs_the_hidden_mood():
    env = gym.make("rlagent/CustomerService-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(TypeError, match="sample_hidden"):
        env.shaping_potential(hide(env.get_state()))


def test_env_model_shapes_customer_service_rewards_with_the_mood_bonus():
    env = gym.make("rlagent/CustomerService-v0")
    env.reset(seed=3, options={"mood": "angry", "patience": 10})
    base = env.unwrapped
    rc = base.reward_config
    shaped, plain = EnvModel(env, reward_shaping=True), EnvModel(env)
    state = base.get_state()
    s1, r1, d1 = shaped.step(state, base.APOLOGISE, np.random.default_rng(0))
    s2, r2, d2 = plain.step(state, base.APOLOGISE, np.random.default_rng(0))
    assert (s1, d1) == (s2, d2) and s1.mood == 1
    assert r1 == pytest.approx(r2 + rc.success * (rc.mood_scale[1] - rc.mood_scale[2]))


def test_train_config_accepts_reward_shaping():
    config = TrainConfig(env_id="rlagent/Recommendation-v0", reward_shaping=True)
    assert config.to_dict()["reward_shaping"] is True


@pytest.mark.parametrize("dynamics", ["recsim", "bored"])
@pytest.mark.parametrize("shaped", [False, True])
def test_expected_reward_is_the_mean_of_sampled_rewards(dynamics, shaped):
    env = gym.make("rlagent/Recommendation-v0", dynamics=dynamics, **REC)
    env.reset(seed=3)
    for _ in range(4):
        env.step(np.array([0, 1]))
    state = env.unwrapped.get_state()
    model = EnvModel(env, reward_shaping=shaped)
    rng = np.random.default_rng(0)
    action = np.array([2, 3])
    index = model.to_index(action)
    samples = np.array([model.step(state, index, rng)[1] for _ in range(4000)])
    expected = env.unwrapped.expected_reward(action, state, shaped=shaped)
    assert expected == env.unwrapped.expected_reward(action, shaped=shaped)  # current state
    assert abs(samples.mean() - expected) < 4 * samples.std() / np.sqrt(len(samples)) + 1e-9
    assert samples.std() > 0.1  # the sampled rewards really vary
    averaged = EnvModel(env, reward_shaping=shaped, expected_rewards=True)
    rewards = [averaged.step(state, index, np.random.default_rng(s))[1] for s in range(20)]
    assert rewards == pytest.approx([expected] * 20)


def test_expected_reward_wrapper_learns_the_expectation_and_reports_the_sampled():
    vec = _rec_vec(reward_shaping=True, expected_rewards=True)
    env = vec.envs[0]
    assert isinstance(env, ExpectedReward) and env.shaped
    vec.reset()
    base = env.unwrapped
    rng = np.random.default_rng(1)
    episode = None
    while episode is None:
        action = rng.integers(0, 4, (1, 2))
        expected = base.expected_reward(action[0], shaped=True)
        _, rewards, dones, infos = vec.step(action)
        assert float(rewards[0]) == pytest.approx(expected, abs=1e-5)
        episode = infos[0].get("episode")
    assert episode["r"] > 100.0  # Monitor keeps the minutes watched
    with pytest.raises(RewardShapingError, match="expected_reward"):
        ExpectedReward(gym.make("rlagent/CustomerService-v0"))
