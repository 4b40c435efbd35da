"""Action masks: the env's action_masks() as an observation entry that masks the policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import rlagent
from rlagent.agents import load, make_ppo, make_vec_env, observation_function, save_model
from rlagent.training import TrainConfig, train
from rlagent.wrappers import ACTION_MASK_KEY, ActionMaskError, ActionMaskObservation

SMALL = dict(n_steps=32, batch_size=32, n_epochs=2)


class LockedEnv(gym.Env):
    """Three actions; action 0 pays most but is locked on odd turns, action 2 is never allowed."""

    observation_space = spaces.Dict(
        {"text": spaces.Text(20), "features": spaces.Box(0.0, 1.0, (1,), np.float32)}
    )
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.turn = 0
        return self._obs(), {}

    def _obs(self):
        return {"text": "pick", "features": np.array([self.turn % 2], np.float32)}

    def action_masks(self):
        return np.array([self.turn % 2 == 0, True, False])

    def step(self, action):
        if not self.action_masks()[action]:
            raise AssertionError(f"masked action {action} taken on turn {self.turn}")
        self.turn += 1
        reward = {0: 1.0, 1: 0.2}[int(action)]
        return self._obs(), reward, False, self.turn >= 4, {}


def _model(**kwargs):
    return make_ppo(
        LockedEnv,
        encoder="tiny-random",
        n_envs=2,
        seed=0,
        max_length=8,
        action_masks=True,
        policy_kwargs={"net_arch": [16]},
        learning_rate=3e-3,
        **SMALL,
        **kwargs,
    )


def test_the_wrapper_adds_the_current_mask():
    env = ActionMaskObservation(LockedEnv())
    obs, _ = env.reset(seed=0)
    assert env.observation_space[ACTION_MASK_KEY] == spaces.Box(0.0, 1.0, (3,), np.float32)
    assert obs[ACTION_MASK_KEY].tolist() == [1.0, 1.0, 0.0]
    obs, *_ = env.step(1)
    assert obs[ACTION_MASK_KEY].tolist() == [0.0, 1.0, 0.0]
    assert env.observation_space.contains(obs)


def test_the_wrapper_explains_what_it_cannot_wrap():
    class NoMasks(LockedEnv):
        action_masks = None

    with pytest.raises(ActionMaskError, match="NoMasks has no action_masks\\(\\) method"):
        ActionMaskObservation(NoMasks())

    class Continuous(LockedEnv):
        action_space = spaces.Box(-1.0, 1.0, (1,))

    with pytest.raises(ActionMaskError, match="needs a Discrete action space"):
        ActionMaskObservation(Continuous())

    class Taken(LockedEnv):
        observation_space = spaces.Dict(
            {"text": spaces.Text(5), ACTION_MASK_KEY: spaces.Box(0, 1, (3,))}
        )

    with pytest.raises(ActionMaskError, match="already has an entry named 'action_mask'"):
        ActionMaskObservation(Taken())

    class AllLocked(LockedEnv):
        def action_masks(self):
            return np.zeros(3, bool)

    with pytest.raises(ActionMaskError, match="at least one allowed action"):
        ActionMaskObservation(AllLocked()).reset(seed=0)


def test_a_masked_policy_never_takes_a_masked_action():
    model = _model()
    # LockedEnv.step raises on a masked action, so training and sampling both check it.
    model.learn(256)
    env = LockedEnv()
    convert = observation_function(env, model)
    obs, _ = env.reset(seed=0)
    for _ in range(4):
        tensor, _ = model.policy.obs_to_tensor(convert(obs))
        with torch.no_grad():
            probs = model.policy.get_distribution(tensor).distribution.probs[0]
            _, log_prob, entropy = model.policy.evaluate_actions(tensor, torch.tensor([2]))
        assert probs[2] == 0 and (probs[0] == 0) == (env.turn % 2 == 1)
        assert log_prob.item() < -1e6 and torch.isfinite(entropy).all()
        for deterministic in (True, False):
            action, _ = model.predict(convert(obs), deterministic=deterministic)
            assert env.action_masks()[int(action)]
        obs, *_ = env.step(int(action))


def test_a_masked_policy_round_trips_through_save_and_load(tmp_path):
    model = _model()
    save_model(model, tmp_path / "model")
    loaded = load(tmp_path / "model", env=LockedEnv())
    assert loaded.policy.action_mask == ACTION_MASK_KEY
    assert rlagent.agents.spec_of(loaded)["action_masks"] is True
    assert ACTION_MASK_KEY in loaded.observation_space.spaces


def test_masks_are_refused_where_they_cannot_apply():
    vec = make_vec_env(LockedEnv, n_envs=1, encoder="tiny-random", max_length=8)
    with pytest.raises(ValueError, match="action_masks build their own env"):
        make_ppo(vec, encoder="tiny-random", action_masks=True)
    with pytest.raises(ActionMaskError, match="must name a Box entry with one value per action"):
        make_ppo(
            LockedEnv,
            encoder="tiny-random",
            n_envs=1,
            max_length=8,
            policy_kwargs={"action_mask": "features"},
        )


def test_train_with_action_masks_records_them_and_resumes(tmp_path):
    gym.register("test_masks/Locked-v0", entry_point=LockedEnv)
    try:
        config = TrainConfig(
            env_id="test_masks/Locked-v0",
            n_timesteps=128,
            n_envs=2,
            encoder="tiny-random",
            max_length=8,
            action_masks=True,
            ppo=SMALL,
            policy_kwargs={"net_arch": [16]},
            eval_freq=64,
            eval_episodes=2,
            checkpoint_freq=64,
            baseline_episodes=0,
            device="cpu",
        )
        out = tmp_path / "run"
        train(config, out)
        train(config.replace(n_timesteps=256), out, resume=True)
        model = load(out / "model")
        assert model.num_timesteps == 256 and model.policy.action_mask == ACTION_MASK_KEY
    finally:
        gym.registry.pop("test_masks/Locked-v0", None)
