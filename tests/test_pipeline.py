"""The observation pipeline: one description, the same observations for every caller."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest

from rlagent.agents import (
    AgentConfig,
    load,
    make_ppo,
    observation_function,
    save_model,
    spec_of,
    wrap_for_model,
)
from rlagent.evaluation import ModelAgent
from rlagent.pipeline import (
    PRIVILEGED_KEY,
    NotATextModelError,
    ObservationPipeline,
    PipelineError,
    make_vec_env,
    pipeline_of,
    wrap_observations,
)
from rlagent.planning import make_planning_agent

SMALL = dict(n_steps=16, batch_size=16, n_epochs=1)
# Every bundled env with the settings that add observation entries.
BUILDS = {
    "rlagent/CustomerService-v0": dict(
        privileged_critic=True, auxiliary_targets=True, action_masks=True, reward_shaping=True
    ),
    "rlagent/Recommendation-v0": dict(
        privileged_critic=True,
        reward_shaping=True,
        expected_rewards=True,
        env_kwargs={"n_candidates": 4, "slate_size": 2},
        policy_kwargs={"candidates": "candidates", "shorter_slates": True},
    ),
}


def _assert_same(a: dict, b: dict, *, skip: tuple[str, ...] = ()) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        if key not in skip:
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def _first(vec_obs: dict) -> dict:
    return {key: value[0] for key, value in vec_obs.items()}


def test_a_pipeline_round_trips_through_json():
    pipeline = ObservationPipeline(
        "tiny-random",
        max_length=16,
        privileged=True,
        action_mask=True,
        critic_only=["privileged"],
        auxiliary_targets="privileged",
    )
    assert pipeline.critic_only == ("privileged",)
    data = json.loads(json.dumps(pipeline.to_dict()))
    assert data["version"] == ObservationPipeline.FORMAT_VERSION
    assert ObservationPipeline.from_dict(data) == pipeline


def test_bad_pipelines_say_what_to_fix():
    with pytest.raises(
        PipelineError, match=re.escape("Unknown observation pipeline field(s) mx_length")
    ):
        ObservationPipeline.from_dict({"mx_length": 8})
    with pytest.raises(PipelineError, match=re.escape("format version 99 is newer than this")):
        ObservationPipeline.from_dict({"version": 99})
    with pytest.raises(PipelineError, match=re.escape("a segment needs at least 2 tokens")):
        ObservationPipeline("tiny-random", max_length=1)
    with pytest.raises(PipelineError, match=re.escape("expected a list of entry names")):
        ObservationPipeline("tiny-random", critic_only="privileged")
    with pytest.raises(
        ValueError, match=re.escape("make_vec_env got both pipeline and max_length")
    ):
        make_vec_env("rlagent/CustomerService-v0", pipeline=ObservationPipeline(), max_length=8)


def test_a_tokenized_env_without_the_pipelines_entries_is_refused():
    tokenized = make_vec_env(
        "rlagent/CustomerService-v0", encoder="tiny-random", max_length=8
    ).envs[0]
    with pytest.raises(PipelineError, match=re.escape("lacks the 'privileged' entry")):
        wrap_observations(tokenized, ObservationPipeline("tiny-random", 8, privileged=True))


def test_pipeline_of_a_model_without_text_input_says_so():
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=16, batch_size=16)
    with pytest.raises(NotATextModelError, match=re.escape("build it with rlagent.make_ppo")):
        pipeline_of(model)


@pytest.mark.parametrize("env_id", sorted(BUILDS))
def test_training_evaluation_and_planning_read_the_same_observations(env_id, tmp_path):
    settings = dict(BUILDS[env_id])
    env_kwargs = settings.pop("env_kwargs", {})
    model = make_ppo(
        env_id,
        config=AgentConfig(),  # only the settings below, not the env's bundled ones
        encoder="tiny-random",
        max_length=12,
        n_envs=1,
        seed=5,
        device="cpu",
        env_kwargs=env_kwargs,
        **settings,
        **SMALL,
    )
    pipeline = pipeline_of(model)
    assert spec_of(model)["pipeline"] == pipeline.to_dict()
    assert pipeline.privileged and pipeline.critic_reads_privileged
    save_model(model, tmp_path / "model")
    loaded = load(tmp_path / "model", env=env_id, device="cpu")
    assert pipeline_of(loaded) == pipeline

    training = model.get_env()  # the training VecEnv (Monitor and reward wrappers included)
    training.seed(11)
    reloaded = loaded.get_env()  # built by load() from the saved pipeline
    reloaded.seed(11)
    raw = gym.make(env_id, **env_kwargs)
    wrapped = wrap_for_model(gym.make(env_id, **env_kwargs), loaded)
    convert = observation_function(raw, loaded)
    agent = ModelAgent(loaded, raw)
    planner = make_planning_agent(loaded, raw, simulations=2, oracle=True)

    train_obs = _first(training.reset())
    reloaded_obs = _first(reloaded.reset())
    wrapped_obs, _ = wrapped.reset(seed=11)
    raw_obs, _ = raw.reset(seed=11)
    for _ in range(3):
        _assert_same(train_obs, reloaded_obs)
        _assert_same(train_obs, wrapped_obs)
        # Acting outside training has no hidden features: zeros, which actions never read.
        converted = convert(raw_obs)
        _assert_same(train_obs, converted, skip=(PRIVILEGED_KEY,))
        _assert_same(converted, agent._convert(raw_obs))
        assert not converted[PRIVILEGED_KEY].any()
        # The planner's critic reads the hidden features of the state it evaluates.
        evaluator = planner.evaluator
        state = raw.unwrapped.get_state()
        _assert_same(train_obs, evaluator.preprocess(evaluator.observe(state)))
        action, _ = model.predict(train_obs, deterministic=True)
        train_obs, _, done, _ = training.step(action[None])
        reloaded_obs, *_ = reloaded.step(action[None])
        train_obs, reloaded_obs = _first(train_obs), _first(reloaded_obs)
        wrapped_obs, *_ = wrapped.step(action)
        raw_obs, *_ = raw.step(action)
        if done[0]:
            break
