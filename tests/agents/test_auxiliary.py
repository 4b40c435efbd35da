"""Auxiliary targets: the actor learns to predict privileged features it never reads."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import rlagent
from rlagent.agents import AuxiliaryLoss, AuxiliaryTargetsError, auxiliary_loss, make_ppo
from rlagent.training import ConfigError, TrainConfig, load_config
from rlagent.wrappers import PRIVILEGED_KEY

SMALL = dict(n_steps=32, batch_size=32, n_epochs=1)


class ColourEnv(gym.Env):
    """One-step episodes naming a colour; the hidden feature says which, the reward never does.

    PPO's own loss has nothing to learn about the colour here, so only the auxiliary loss can
    teach the actor to tell them apart.
    """

    COLOURS = ("red", "blue")
    observation_space = spaces.Dict(
        {"text": spaces.Text(20), "features": spaces.Box(0.0, 1.0, (1,), np.float32)}
    )
    action_space = spaces.Discrete(2)
    privileged_space = spaces.Box(0.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.colour = int(self.np_random.integers(2))
        return self._obs(), {}

    def _obs(self):
        return {"text": f"the {self.COLOURS[self.colour]} one", "features": np.zeros(1, np.float32)}

    def privileged_features(self, state=None):
        out = np.zeros(2, np.float32)
        out[self.colour] = 1.0
        return out

    def step(self, action):
        return self._obs(), 1.0, True, False, {}


def _model(privileged_critic=False):
    return make_ppo(
        ColourEnv,
        encoder="tiny-random",
        n_envs=2,
        seed=0,
        max_length=8,
        privileged_critic=privileged_critic,
        auxiliary_targets=True,
        learning_rate=3e-3,
        **SMALL,
    )


def _head_logits(model, obs):
    policy = model.policy
    tensor, _ = policy.obs_to_tensor(obs)
    with torch.no_grad():
        features = policy.extract_features(tensor, policy.pi_features_extractor)
        return policy.auxiliary_head(policy.mlp_extractor.forward_actor(features)).numpy()[0]


def _predictions(model):
    """The auxiliary head's probabilities for each colour, with the privileged entry zeroed."""
    env = ColourEnv()
    convert = rlagent.agents.observation_function(env, model)
    out = []
    for colour in range(2):
        env.colour = colour
        out.append(1 / (1 + np.exp(-_head_logits(model, convert(env._obs())))))
    return np.array(out)


def test_auxiliary_loss_teaches_the_actor_what_the_reward_does_not():
    model = _model()
    assert model.policy.auxiliary_head.out_features == 2
    before = _predictions(model)
    model.learn(1024, callback=AuxiliaryLoss(1.0, epochs=4))
    after = _predictions(model)
    # Row = true colour, column = predicted probability of each colour.
    assert after[0, 0] > 0.9 and after[1, 1] > 0.9, after
    assert after[0, 1] < 0.1 and after[1, 0] < 0.1, after
    assert not (before[0, 0] > 0.9 and before[1, 1] > 0.9), before


def test_the_auxiliary_prediction_does_not_read_the_privileged_entry():
    model = _model()
    model.learn(256, callback=AuxiliaryLoss(1.0))
    env = ColourEnv()
    env.reset(seed=0)
    convert = rlagent.agents.observation_function(env, model)
    obs = convert(env._obs())
    logits = [
        _head_logits(model, {**obs, PRIVILEGED_KEY: np.full(2, value, np.float32)})
        for value in (0.0, 1.0)
    ]
    np.testing.assert_allclose(logits[0], logits[1])


class _CheckLogProbs(BaseCallback):
    """After the auxiliary steps, the buffer's log-probabilities are the current policy's."""

    def __init__(self):
        super().__init__()
        self.gaps = []

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        buffer, policy = self.model.rollout_buffer, self.model.policy
        index = np.arange(buffer.buffer_size * buffer.n_envs)
        batch = buffer._get_samples(index)
        with torch.no_grad():
            _, log_prob, _ = policy.evaluate_actions(
                batch.observations, batch.actions.long().flatten()
            )
        self.gaps.append(float((log_prob - batch.old_log_prob).abs().max()))


def test_log_probabilities_are_refreshed_after_the_auxiliary_steps():
    model = _model()
    check = _CheckLogProbs()
    model.learn(256, callback=[AuxiliaryLoss(1.0, epochs=3), check])
    assert len(check.gaps) == 4 and max(check.gaps) < 1e-5


def test_auxiliary_loss_is_a_finite_mean_over_the_batch():
    model = _model()
    model.learn(64, callback=AuxiliaryLoss(1.0))
    buffer = model.rollout_buffer
    batch = buffer._get_samples(np.arange(8))
    loss = auxiliary_loss(model.policy, batch.observations)
    assert loss.ndim == 0 and np.isfinite(loss.item()) and loss.item() > 0


@pytest.mark.parametrize("privileged_critic", [False, True])
def test_only_a_privileged_critic_reads_the_auxiliary_targets(privileged_critic):
    model = _model(privileged_critic=privileged_critic)
    model.learn(64, callback=AuxiliaryLoss(1.0))
    env = ColourEnv()
    env.reset(seed=0)
    obs = rlagent.agents.observation_function(env, model)(env._obs())
    values = []
    for value in (0.0, 1.0):
        changed = {**obs, PRIVILEGED_KEY: np.full(2, value, np.float32)}
        tensor, _ = model.policy.obs_to_tensor(changed)
        with torch.no_grad():
            values.append(model.policy.predict_values(tensor).item())
    assert (values[0] != values[1]) == privileged_critic
    assert model.rlagent_spec["privileged_critic"] == privileged_critic


def test_auxiliary_targets_must_be_a_numeric_entry():
    with pytest.raises(AuxiliaryTargetsError, match="not a numeric observation entry"):
        make_ppo(
            ColourEnv,
            encoder="tiny-random",
            n_envs=1,
            policy_kwargs={"auxiliary_targets": "colour"},
            **SMALL,
        )


def test_auxiliary_loss_callback_needs_an_auxiliary_head():
    model = make_ppo(ColourEnv, encoder="tiny-random", n_envs=1, **SMALL)
    with pytest.raises(AuxiliaryTargetsError, match="no auxiliary head"):
        model.learn(32, callback=AuxiliaryLoss(1.0))


@pytest.mark.parametrize("kwargs", [{"coef": 0.0}, {"coef": 1.0, "epochs": 0}])
def test_auxiliary_loss_rejects_bad_settings(kwargs):
    with pytest.raises(AuxiliaryTargetsError, match="expected coef > 0"):
        AuxiliaryLoss(**kwargs)


def test_config_rejects_a_negative_auxiliary_coef():
    with pytest.raises(ConfigError, match="auxiliary_coef"):
        TrainConfig(env_id="rlagent/CustomerService-v0", auxiliary_coef=-1.0)


def test_train_with_auxiliary_coef_records_it_logs_the_loss_and_resumes(tmp_path):
    config = load_config(
        "rlagent/CustomerService-v0",
        encoder="tiny-random",
        n_timesteps=64,
        n_envs=2,
        eval_freq=0,
        eval_episodes=2,
        checkpoint_freq=32,
        baseline_episodes=0,
        auxiliary_coef=0.5,
        ppo=dict(n_steps=16, batch_size=16, n_epochs=1),
    )
    out = tmp_path / "run"
    result = rlagent.training.train(config, out)
    model = rlagent.agents.load(result.model_path)
    assert model.rlagent_spec["auxiliary_targets"] is True
    assert model.rlagent_spec["privileged_critic"] is False
    assert model.policy.auxiliary_targets == PRIVILEGED_KEY
    assert result.metrics["config"]["auxiliary_coef"] == 0.5
    resumed = rlagent.training.train(config.replace(n_timesteps=128), out, resume=True)
    assert resumed.timesteps == 128
    steps = []
    for events in (out / "tensorboard").rglob("events.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "train/auxiliary_loss" in accumulator.Tags()["scalars"]:
            steps += [event.step for event in accumulator.Scalars("train/auxiliary_loss")]
    assert max(steps) == 128 and min(steps) <= 64, steps
