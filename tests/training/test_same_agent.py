"""``rlagent.make_ppo(env_id)`` builds the agent ``rlagent train --env env_id`` builds."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import rlagent
from rlagent.agents import TextPPO
from rlagent.training import load_config, train

OVERRIDES = dict(encoder="tiny-random", encoder_layers=[-1], n_envs=2)
PPO_SETTINGS = (
    "n_steps",
    "batch_size",
    "n_epochs",
    "gamma",
    "gae_lambda",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "normalize_advantage",
    "target_kl",
    "n_envs",
    "seed",
)


class _Built(Exception):
    """Stops ``train`` once it has built its model."""


def _model_train_builds(env_id, tmp_path, monkeypatch):
    built = {}

    def capture(self, total_timesteps, callback=None, **kwargs):
        built["model"] = self
        raise _Built

    with monkeypatch.context() as patch:
        patch.setattr(TextPPO, "learn", capture)
        config = load_config(env_id, device="cpu", baseline_episodes=0, **OVERRIDES)
        with pytest.raises(_Built):
            train(config, tmp_path / "run")
    return built["model"]


def _wrappers(vec_env):
    env, names = vec_env.envs[0], []
    while isinstance(env, gym.Wrapper):
        names.append(type(env).__name__)
        env = env.env
    return names


def _reward_scale(vec_env):
    env = vec_env.envs[0]
    if isinstance(env, gym.wrappers.TransformReward):
        return env.func(1.0)
    return 1.0


@pytest.mark.parametrize("env_id", ["rlagent/CustomerService-v0", "rlagent/Recommendation-v0"])
def test_make_ppo_builds_the_agent_train_builds(env_id, tmp_path, monkeypatch):
    trained = _model_train_builds(env_id, tmp_path, monkeypatch)
    made = rlagent.make_ppo(env_id, device="cpu", seed=0, **OVERRIDES)

    assert type(made) is type(trained) is TextPPO
    assert made.rlagent_spec == trained.rlagent_spec
    assert made.observation_space == trained.observation_space
    assert made.action_space == trained.action_space
    # The policy: class, constructor parameters, architecture and (same seed) initial weights.
    assert type(made.policy) is type(trained.policy)
    made_params = made.policy._get_constructor_parameters()
    trained_params = trained.policy._get_constructor_parameters()
    for params in (made_params, trained_params):
        params.pop("lr_schedule")  # a function: compared by value below
    assert made_params == trained_params
    made_state, trained_state = made.policy.state_dict(), trained.policy.state_dict()
    assert {k: v.shape for k, v in made_state.items()} == {
        k: v.shape for k, v in trained_state.items()
    }
    for key in made_state:
        torch.testing.assert_close(made_state[key], trained_state[key], rtol=0, atol=0)
    # PPO's hyperparameters, schedules included.
    for name in PPO_SETTINGS:
        assert getattr(made, name) == getattr(trained, name), name
    for progress in (1.0, 0.5):
        assert made.lr_schedule(progress) == trained.lr_schedule(progress)
        assert made.clip_range(progress) == trained.clip_range(progress)
    # The env: the same wrappers and reward scale.
    assert _wrappers(made.get_env()) == _wrappers(trained.get_env())
    assert _reward_scale(made.get_env()) == _reward_scale(trained.get_env())
    # The auxiliary head is trained by model.learn the way train() trains it.
    made_loss, trained_loss = made.auxiliary_loss, trained.auxiliary_loss
    assert (made_loss is None) == (trained_loss is None)
    if made_loss is not None:
        settings = ("coef", "epochs", "warmup_epochs", "learning_rate")
        assert [getattr(made_loss, s) for s in settings] == [
            getattr(trained_loss, s) for s in settings
        ]


def test_the_customer_service_agent_trains_its_probe_in_learn(monkeypatch):
    model = rlagent.make_ppo(
        "rlagent/CustomerService-v0",
        device="cpu",
        seed=0,
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        auxiliary={"warmup_epochs": 1},
        **OVERRIDES,
    )
    assert model.policy.auxiliary_bottleneck and model.policy.belief_noise == 3.0
    loss = model.auxiliary_loss
    assert (loss.coef, loss.epochs, loss.learning_rate) == (1.0, 4, 0.003)
    calls = []
    original = type(loss)._on_rollout_end
    monkeypatch.setattr(
        type(loss), "_on_rollout_end", lambda self: calls.append(self) or original(self)
    )
    model.learn(32)
    assert calls == [loss]
