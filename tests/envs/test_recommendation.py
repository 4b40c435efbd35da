"""Tests of the recommendation session environment (checkers, determinism, state, parity)."""

from __future__ import annotations

import doctest
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
import envs.recommendation.env as env_module
from envs.recommendation import (
    DYNAMICS,
    BestTopicPolicy,
    InvalidSlateError,
    RandomPolicy,
    RecommendationConfigError,
    RecommendationEnv,
    RecState,
    ResetNeededError,
)

REC_IDS = [env_id for env_id in envs.ENV_IDS if "Recommendation" in env_id]
VARIANTS = [
    {},
    {"slate_size": 1},
    {"slate_size": 3, "n_candidates": 6, "history_length": 1},
    {"dynamics": "bored"},
    {"n_topics": 5, "n_items": 60, "budget": 30.0},
]


def run_episode(env, policy, seed, max_steps=1000):
    obs, _ = env.reset(seed=seed)
    policy.reset(seed=seed + 12345)
    total, steps, info = 0.0, 0, {}
    for steps in range(1, max_steps + 1):  # noqa: B007
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        total += reward
        if terminated or truncated:
            break
    return total, steps, info


@pytest.mark.parametrize("env_id", REC_IDS)
def test_registered_envs_pass_check_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == 300


@pytest.mark.parametrize("kwargs", VARIANTS, ids=str)
def test_variants_pass_check_env(kwargs):
    check_env(RecommendationEnv(**kwargs), skip_render_check=True)


def test_docstring_example_runs():
    result = doctest.testmod(env_module, verbose=False)
    assert result.failed == 0 and result.attempted > 0


def test_spaces_are_text_segments_and_boxes():
    env = RecommendationEnv(n_candidates=7, slate_size=2, history_length=4)
    space = env.observation_space
    assert set(space.spaces) == {"candidates", "history", "candidate_popularity", "features"}
    assert isinstance(space["candidates"], gym.spaces.Tuple) and len(space["candidates"]) == 7
    assert all(isinstance(s, gym.spaces.Text) for s in space["candidates"])
    assert len(space["history"]) == 4
    assert space["features"].dtype == np.float32
    assert space["candidate_popularity"].shape == (7,)
    assert env.action_space == gym.spaces.MultiDiscrete([7, 7])
    assert RecommendationEnv(slate_size=1).action_space == gym.spaces.Discrete(10)


def test_metadata_declares_baselines_and_metrics():
    env = RecommendationEnv()
    assert {"random", "popularity", "myopic", "oracle"} <= set(env.BASELINES)
    assert env.MAIN_METRIC in env.METRICS
    obs, info = env.reset(seed=0)
    assert set(info["episode_metrics"]) == set(env.METRICS)
    policy = RandomPolicy(env)
    total, steps, info = run_episode(env, policy, seed=0)
    metrics = info["episode_metrics"]
    assert set(metrics) == set(env.METRICS)
    assert metrics["watch_time"] == pytest.approx(total)
    assert metrics["session_length"] == steps
    assert 0.0 <= metrics["click_through_rate"] <= 1.0


@pytest.mark.parametrize("kwargs", VARIANTS, ids=str)
def test_every_baseline_plays_an_episode(kwargs):
    env = RecommendationEnv(**kwargs)
    for name, cls in env.BASELINES.items():
        policy = cls(env)
        total, steps, info = run_episode(env, policy, seed=3)
        assert info["episode_metrics"]["session_length"] == steps, name
        assert total >= 0.0


def test_same_seed_same_trajectory():
    def trajectory(seed):
        env = RecommendationEnv()
        policy = RandomPolicy(env)
        obs, _ = env.reset(seed=seed)
        policy.reset(seed=1)
        out = [obs["candidates"]]
        for _ in range(40):
            obs, reward, terminated, _, _ = env.step(policy.act(obs))
            out.append((obs["candidates"], obs["history"], reward, obs["features"].tolist()))
            if terminated:
                break
        return out

    assert trajectory(5) == trajectory(5)
    assert trajectory(5) != trajectory(6)


def test_global_numpy_random_is_not_used():
    env = RecommendationEnv()
    env.reset(seed=0)
    before = np.random.get_state()[1].copy()
    for _ in range(20):
        env.step(np.array([0, 1]))
    assert np.array_equal(np.random.get_state()[1], before)


def test_duplicate_positions_are_shown_once():
    env = RecommendationEnv(n_candidates=3, slate_size=3)
    env.reset(seed=0)
    env.step(np.array([1, 1, 1]))
    clicked, *items = env.get_state().log[-1]
    assert items[1:] == [-1, -1]
    assert clicked in (-1, 0)


def test_invalid_actions_raise_with_messages():
    env = RecommendationEnv(n_candidates=10, slate_size=2)
    with pytest.raises(ResetNeededError, match=re.escape("call env.reset() first")):
        env.step(np.array([0, 1]))
    env.reset(seed=0)
    expected = "is not in MultiDiscrete([10] * 2); expected 2 candidate positions in 0..9"
    for bad in (np.array([0, 10]), [1], [0, 1, 2], "ab", [0.5, 1]):
        with pytest.raises(InvalidSlateError, match=re.escape(expected)):
            env.step(bad)
    single = RecommendationEnv(slate_size=1)
    single.reset(seed=0)
    with pytest.raises(InvalidSlateError, match=re.escape("is not in Discrete(10)")):
        single.step(10)


def test_invalid_settings_raise_with_messages():
    with pytest.raises(RecommendationConfigError, match=re.escape("dynamics='kuai' is unknown")):
        RecommendationEnv(dynamics="kuai")
    with pytest.raises(RecommendationConfigError, match=re.escape("need 1 <= slate_size")):
        RecommendationEnv(n_candidates=2, slate_size=3)
    with pytest.raises(RecommendationConfigError, match=re.escape("boredom=1.5 is outside")):
        RecommendationEnv(boredom=1.5)
    with pytest.raises(RecommendationConfigError, match=re.escape("budget=0.0 must be > 0")):
        RecommendationEnv(budget=0)


# ---------------------------------------------------------------- hypothesis properties
SETTINGS = st.fixed_dictionaries(
    {
        "dynamics": st.sampled_from(sorted(DYNAMICS)),
        "n_candidates": st.integers(1, 8),
        "n_topics": st.integers(2, 20),
        "history_length": st.integers(1, 4),
        "budget": st.floats(1.0, 60.0),
    }
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kwargs=SETTINGS, data=st.data())
def test_property_episodes_end_rewards_bounded_obs_valid(kwargs, data):
    slate = data.draw(st.integers(1, kwargs["n_candidates"]))
    env = RecommendationEnv(slate_size=slate, **kwargs)
    seed = data.draw(st.integers(0, 2**16))
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    # While the budget holds a whole item, every step costs at least `min_cost` minutes. Below
    # that a click shrinks the remaining budget by a factor (it watches what is left and gets
    # part of it back), so only no-clicks end the session: a generous cap, not a tight bound.
    quality_max = float(env.catalog.quality.max())
    cfg = env.user_config
    min_cost = min(cfg.no_click_cost, cfg.item_minutes * (1 - cfg.refund_rate * quality_max))
    assert min_cost > 0
    limit = 10 * (int(np.ceil(cfg.budget / min_cost)) + 1) + 200
    step = 0
    while step < limit:
        step += 1
        assert env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert 0.0 <= reward <= cfg.item_minutes
        assert not truncated
        if terminated:
            break
    assert terminated, f"episode still running after {step} steps"
    assert info["episode_metrics"]["session_length"] == step


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.integers(0, 30))
def test_property_hidden_state_never_reaches_the_observation(seed, steps):
    env = RecommendationEnv()
    env.reset(seed=seed)
    for _ in range(steps):
        _, _, terminated, _, _ = env.step(env.action_space.sample())
        if terminated:
            break
    state = env.get_state()
    before = env.observe()
    rng = np.random.default_rng(seed)
    env.set_state(env.sample_hidden(state, rng))
    after = env.observe()
    for key in before:
        if isinstance(before[key], np.ndarray):
            assert np.array_equal(before[key], after[key])
        else:
            assert before[key] == after[key]


# ---------------------------------------------------------------- planning support
def play(env, actions):
    out = []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs["candidates"], obs["history"], reward, terminated, env.get_state()))
        if terminated:
            break
    return out


@pytest.mark.parametrize("kwargs", [{}, {"dynamics": "bored"}, {"slate_size": 1}], ids=str)
def test_get_set_state_round_trip(kwargs):
    env = RecommendationEnv(**kwargs)
    env.reset(seed=11)
    env.action_space.seed(11)
    play(env, [env.action_space.sample() for _ in range(15)])
    state = env.get_state()
    assert isinstance(state, RecState) and hash(state) == hash(env.get_state())
    assert state == env.get_state()
    assert set(RecState.HIDDEN) == {"interests", "budget"}
    actions = [env.action_space.sample() for _ in range(30)]
    env.np_random = np.random.default_rng(99)
    first = play(env, actions)
    other = RecommendationEnv(**kwargs)
    other.reset(seed=0)
    other.set_state(state)
    assert other.get_state() == state
    other.np_random = np.random.default_rng(99)
    second = play(other, actions)
    assert first == second


def test_state_after_reset_and_types_are_plain():
    env = RecommendationEnv()
    env.reset(seed=0)
    state = env.get_state()
    assert state.step == 0 and state.log == () and state.budget == 200.0
    env.step(np.array([0, 1]))
    state = env.get_state()
    for value in vars(state).values():
        assert not isinstance(value, (np.ndarray, list))
    expected = "set_state() received dict; expected a RecState"
    with pytest.raises(TypeError, match=re.escape(expected)):
        env.set_state({})


def test_sample_hidden_keeps_observables_and_draws_hidden():
    env = RecommendationEnv()
    env.reset(seed=4)
    policy = RandomPolicy(env)
    policy.reset(seed=0)
    obs = env.observe()
    for _ in range(30):
        obs, *_ = env.step(policy.act(obs))
    state = env.get_state()
    sample = env.sample_hidden(state, np.random.default_rng(0))
    for name in vars(state):
        if name not in RecState.HIDDEN:
            assert getattr(sample, name) == getattr(state, name), name
    assert sample.interests != state.interests
    assert all(-1.0 <= x <= 1.0 for x in sample.interests)
    assert sample.budget > 0.0
    assert abs(sample.budget - state.budget) < 30.0


def test_log_likelihood_prefers_the_true_interests():
    wins, total = 0, 0
    env = RecommendationEnv()
    policy = RandomPolicy(env)
    for episode in range(5):
        obs, _ = env.reset(seed=episode)
        policy.reset(seed=episode)
        for _ in range(60):
            obs, _, terminated, _, _ = env.step(policy.act(obs))
            if terminated:
                break
        state = env.get_state()
        true_ll = env.log_likelihood(state)
        assert np.isfinite(true_ll) and true_ll < 0.0
        rng = np.random.default_rng(episode)
        samples = [env.log_likelihood(env.sample_hidden(state, rng)) for _ in range(100)]
        wins += sum(true_ll > s for s in samples)
        total += len(samples)
    assert wins / total > 0.8


def test_log_likelihood_edge_cases():
    env = RecommendationEnv()
    env.reset(seed=0)
    assert env.log_likelihood(env.get_state()) == 0.0
    env.step(np.array([0, 1]))
    state = env.get_state()
    bad = RecState(**{**vars(state), "interests": (2.0,) * env.n_topics})
    assert env.log_likelihood(bad) == -np.inf
    clicked, *items = state.log[0]
    topic = env.catalog.topics[items[0]]
    never = list(state.interests)
    never[topic] = -1.0  # weight 0: a click on this topic is impossible
    forced = RecState(**{**vars(state), "log": ((0, *items),), "interests": tuple(never)})
    assert env.log_likelihood(forced) == -np.inf


# ---------------------------------------------------------------- RecSim parity
def mean_return(policy_cls, episodes):
    env = RecommendationEnv(dynamics="recsim", slate_size=2, n_candidates=10)
    policy = policy_cls(env)
    return float(np.mean([run_episode(env, policy, seed=s)[0] for s in range(episodes)]))


def test_parity_random_policy_with_recsim():
    # RecSim interest_evolution (recsim-no-tf 0.2.3, slate 2, 10 candidates): 153.4.
    assert mean_return(RandomPolicy, 500) == pytest.approx(153.4, rel=0.03)


def test_parity_greedy_best_topic_with_recsim():
    # RecSim interest_evolution, greedy on the best topic: 282.
    assert mean_return(BestTopicPolicy, 500) == pytest.approx(282.0, rel=0.05)


def test_render_ansi():
    env = RecommendationEnv(render_mode="ansi", n_candidates=3)
    env.reset(seed=0)
    text = env.render()
    assert text.startswith("step 0") and text.count("\n") == 4
    assert RecommendationEnv().render() is None
