"""A warm start from an expert's demonstrations, and the behaviour-cloning term PPO keeps."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
import toyenv  # noqa: F401  (registers ToyKeyword-v0)
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

import rlagent.agents.text_ppo
from rlagent.agents import (
    AgentConfig,
    BehaviourCloning,
    ConfigError,
    ExpertError,
    WarmStartConfig,
    WarmStartError,
    collect_demonstrations,
    make_ppo,
    model_demonstrations,
    pipeline_of,
    warm_start,
)
from rlagent.training import load_config
from rlagent.wrappers import ACTION_MASK_KEY

ENV_ID = "toyenv:ToyKeyword-v0"
SMALL = dict(n_steps=32, batch_size=32, n_epochs=1)
#: Enough supervised steps for the tiny random encoder to tell the toy env's nine phrases apart.
QUICK = dict(episodes=30, epochs=30, learning_rate=3e-3, batch_size=32)


def _model(env=ENV_ID, **kwargs):
    settings = dict(
        encoder="tiny-random",
        n_envs=2,
        max_length=12,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": [32]},
        **SMALL,
    )
    settings.update(kwargs)
    return make_ppo(env, **settings)


def test_after_the_warm_start_the_policy_agrees_with_the_expert():
    model = _model()
    result = warm_start(model, config=WarmStartConfig(**QUICK), val_env_kwargs={})
    chance = 1 / 3  # three topics
    assert result.transitions == 90 and result.episodes == 30 and result.expert == "oracle"
    assert result.accuracy_before < 0.5
    assert result.accuracy >= 0.9
    assert result.accuracy > max(chance, result.majority_accuracy, result.accuracy_before) + 0.3
    # Other episodes of the same env (other seeds): the policy reads the text, not the seed.
    assert result.val_episodes == 30 and result.val_accuracy >= 0.9
    # The critic learnt the expert's returns better than their mean would.
    demonstrations = model_demonstrations(model)
    assert result.value_loss < 0.5 * float(np.var(demonstrations.returns))
    assert model.rlagent_spec["warm_started"] == result.to_dict()
    assert model.rlagent_spec["warm_start"]["enabled"] is True


def test_demonstrations_are_model_inputs_with_the_returns_ppo_sees():
    model = _model(reward_scale=0.5)
    env = gym.make(ENV_ID)
    demonstrations = collect_demonstrations(
        env, pipeline_of(model), "oracle", episodes=4, seed=7, gamma=0.9, reward_scale=0.5
    )
    env.close()
    assert len(demonstrations) == 12 and demonstrations.episodes == 4
    assert set(demonstrations.observations) == set(model.observation_space.spaces)
    for key, space in model.observation_space.spaces.items():
        assert demonstrations.observations[key].shape == (12, *space.shape), key
    # The oracle is always right (+1, scaled by 0.5); three steps per episode.
    per_episode = [0.5 * (1 + 0.9 + 0.81), 0.5 * (1 + 0.9), 0.5]
    np.testing.assert_allclose(demonstrations.returns, per_episode * 4, rtol=1e-6)
    assert demonstrations.allowed.all()


def test_the_demonstrations_are_rebuilt_identically_from_the_models_settings():
    model = _model(warm_start=dict(QUICK, episodes=5, epochs=1))
    warm_start(model)
    first = model.behaviour_cloning.demonstrations
    again = model_demonstrations(model)
    assert len(first) == len(again) == 15
    for key, value in first.observations.items():
        np.testing.assert_array_equal(value, again.observations[key])
    np.testing.assert_array_equal(first.actions, again.actions)
    np.testing.assert_array_equal(first.returns, again.returns)


def test_the_behaviour_cloning_weight_decays_linearly_to_zero_at_bc_decay_steps():
    cloning = BehaviourCloning(2.0, 100)
    assert [cloning.coef_at(t) for t in (0, 25, 50, 100, 150)] == [2.0, 1.5, 1.0, 0.0, 0.0]
    assert BehaviourCloning(1.0, 0).coef_at(0) == 0.0


class _Logged(BaseCallback):
    """Reads what the callbacks before it recorded at each rollout end."""

    def __init__(self):
        super().__init__()
        self.rows = []
        self.gaps = []

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        values = self.logger.name_to_value
        self.rows.append(
            (self.model.num_timesteps, values.get("train/bc_coef"), values.get("train/bc_loss"))
        )
        buffer = self.model.rollout_buffer
        with torch.no_grad():
            for batch in buffer.get(64):
                _, log_prob, _ = self.model.policy.evaluate_actions(
                    batch.observations, batch.actions.long().flatten()
                )
                self.gaps.append(float((log_prob - batch.old_log_prob).abs().max()))


def test_learn_warm_starts_once_then_clones_with_a_decaying_weight(monkeypatch):
    model = _model(warm_start=dict(QUICK, episodes=5, epochs=2, bc_decay_steps=192))
    calls = []
    original = rlagent.agents.text_ppo.warm_start
    monkeypatch.setattr(
        rlagent.agents.text_ppo, "warm_start", lambda m: calls.append(m) or original(m)
    )
    logged = _Logged()
    model.learn(256, callback=logged)
    assert calls == [model] and "warm_started" in model.rlagent_spec
    assert [row[0] for row in logged.rows] == [64, 128, 192, 256]
    assert [row[1] for row in logged.rows] == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])
    assert [row[2] is not None for row in logged.rows] == [True, True, False, False]
    # The buffer's log-probabilities were recomputed after the cloning steps.
    assert max(logged.gaps) < 1e-5
    model.learn(64, reset_num_timesteps=True)  # a trained, warm-started model: not again
    assert calls == [model]


def test_an_action_the_mask_forbids_is_left_out_of_the_cross_entropy():
    class FirstGroupAlways:
        def __init__(self, env):
            pass

        def reset(self, seed=None):
            pass

        def act(self, observation):
            return 0  # resolves group 0 again after the customer turned it down

    model = _model(
        "rlagent/CustomerService-v0",
        action_masks=True,
        max_length=16,
        encoder_layers=[-1],
        auxiliary={"coef": 0.0, "bottleneck": False, "belief_noise": 0.0},
        n_envs=1,
    )
    result = warm_start(
        model, config=WarmStartConfig(episodes=3, epochs=1), expert=FirstGroupAlways
    )
    demonstrations = model.behaviour_cloning.demonstrations
    mask = demonstrations.observations[ACTION_MASK_KEY]
    assert result.masked_expert_actions == int((mask[:, 0] < 0.5).sum()) > 0
    assert np.isfinite(result.policy_loss)
    assert result.expert == "FirstGroupAlways" and not result.rebuildable


def test_an_env_without_that_expert_is_a_clear_error():
    model = _model()
    with pytest.raises(
        ExpertError,
        match=re.escape(
            "ToyKeyword-v0 has no expert named 'wizard' (its baselines are oracle, random). "
            "Set warm_start.expert to one of its baselines"
        ),
    ):
        warm_start(model, config={"expert": "wizard"})

    class NoBaselines(gym.Env):
        observation_space = spaces.Dict({"text": spaces.Text(20)})
        action_space = spaces.Discrete(2)

    with pytest.raises(ExpertError, match=re.escape("(it declares no BASELINES)")):
        collect_demonstrations(NoBaselines(), pipeline_of(model), "oracle", episodes=1)


def test_an_expert_acting_outside_the_action_space_is_a_clear_error():
    class Wild:
        def __init__(self, env):
            pass

        def act(self, observation):
            return 7

    with pytest.raises(
        ExpertError, match=re.escape("chose 7, outside ToyKeyword-v0's action space Discrete(3)")
    ):
        warm_start(_model(), config={"episodes": 1}, expert=Wild)


def test_cloning_without_demonstrations_says_how_to_fix_it():
    model = _model()
    with pytest.raises(
        WarmStartError,
        match=re.escape("run rlagent.agents.warm_start(model, ...) first, or set "),
    ):
        model.learn(64, callback=BehaviourCloning(1.0, 100))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"episodes": 0}, "warm_start.episodes = 0 is out of range; expected an integer >= 1"),
        ({"learning_rate": -1}, "warm_start.learning_rate = -1 is out of range"),
        ({"bc_decay_steps": 1.5}, "warm_start.bc_decay_steps = 1.5 is out of range"),
        ({"value_coef": -0.1}, "warm_start.value_coef = -0.1 is out of range"),
        ({"expert": ""}, "warm_start.expert = '' is out of range; expected the name of one"),
        ({"enabled": "yes"}, "warm_start.enabled = 'yes' is out of range; expected true or false"),
        ({"epoch": 3}, "warm_start: unknown warm_start setting(s) epoch; known warm_start"),
    ],
)
def test_bad_warm_start_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        AgentConfig(warm_start=settings)


def test_the_warm_start_group_is_off_by_default_and_merges_key_by_key(tmp_path):
    assert not AgentConfig().warm_start.enabled
    assert not load_config("rlagent/CustomerService-v0").warm_start.enabled
    config = tmp_path / "ws.yaml"
    config.write_text("warm_start: {episodes: 50}\n")
    tuned = load_config(ENV_ID, config_file=config, warm_start={"enabled": True})
    assert tuned.warm_start == WarmStartConfig(enabled=True, episodes=50)
    assert load_config(ENV_ID, warm_start=True).warm_start.enabled
    with pytest.raises(ConfigError, match=re.escape("warm_start must be a mapping, got 3")):
        load_config(ENV_ID, warm_start=3)
    model = _model(warm_start=True)
    assert model.rlagent_spec["warm_start"] == WarmStartConfig(enabled=True).to_dict()
    assert "warm_start" not in _model().rlagent_spec


@pytest.mark.parametrize("env_id", ["rlagent/CustomerService-v0", "rlagent/Recommendation-v0"])
def test_every_bundled_env_warm_starts_and_clones(env_id):
    model = _model(
        env_id,
        encoder_layers=[-1],
        n_steps=16,
        batch_size=16,
        warm_start={"episodes": 1, "epochs": 1, "batch_size": 16, "bc_decay_steps": 64},
    )
    logged = _Logged()
    model.learn(32, callback=logged)
    assert model.rlagent_spec["warm_started"]["transitions"] > 0
    assert [row[2] is not None for row in logged.rows] == [True]
