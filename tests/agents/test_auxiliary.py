"""Auxiliary targets: the actor learns to predict privileged features it never reads."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import rlagent
from rlagent.agents import (
    AuxiliaryBottleneck,
    AuxiliaryLoss,
    AuxiliaryTargetsError,
    auxiliary_loss,
    make_ppo,
)
from rlagent.training import ConfigError, TrainConfig, find_latest_checkpoint, load_config
from rlagent.training.checkpoints import load_checkpoint_state
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


def _colour_observations(model, env_cls=None):
    """The model's observations of each colour, in colour order."""
    env = (env_cls or ColourEnv)()
    convert = rlagent.agents.observation_function(env, model)
    observations = []
    for colour in range(2):
        env.colour = colour
        observations.append(convert(env._obs()))
    return observations


def _predictions(model):
    """The auxiliary head's probabilities for each colour, with the privileged entry zeroed."""
    logits = [_head_logits(model, obs) for obs in _colour_observations(model)]
    return 1 / (1 + np.exp(-np.array(logits)))


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
    with pytest.raises(ConfigError, match=re.escape("auxiliary.coef = -1.0 is out of range")):
        TrainConfig(env_id="rlagent/CustomerService-v0", auxiliary={"coef": -1.0})


def _tiny_run_config(**changes):
    """The bundled customer-service config, cut to 64 steps of a tiny encoder."""
    return load_config(
        "rlagent/CustomerService-v0",
        encoder="tiny-random",
        encoder_layers=[-1],  # tiny-random has 2 layers; the bundled config also pools layer 3
        n_timesteps=64,
        n_envs=2,
        eval_freq=0,
        eval_episodes=2,
        checkpoint_freq=32,
        baseline_episodes=0,
        ppo=dict(n_steps=16, batch_size=16, n_epochs=1),
        **changes,
    )


def test_train_with_auxiliary_coef_records_it_logs_the_loss_and_resumes(tmp_path):
    config = _tiny_run_config(auxiliary={"coef": 0.5})
    out = tmp_path / "run"
    result = rlagent.training.train(config, out)
    model = rlagent.agents.load(result.model_path)
    assert model.rlagent_spec["auxiliary_targets"] is True
    assert model.rlagent_spec["privileged_critic"] is False
    assert model.policy.auxiliary_targets == PRIVILEGED_KEY
    assert result.metrics["config"]["auxiliary"]["coef"] == 0.5
    resumed = rlagent.training.train(config.replace(n_timesteps=128), out, resume=True)
    assert resumed.timesteps == 128
    steps = []
    for events in (out / "tensorboard").rglob("events.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "train/auxiliary_loss" in accumulator.Tags()["scalars"]:
            steps += [event.step for event in accumulator.Scalars("train/auxiliary_loss")]
    assert max(steps) == 128 and min(steps) <= 64, steps


def test_the_separate_optimizer_resumes_where_it_stopped(tmp_path):
    config = _tiny_run_config(auxiliary={"epochs": 1, "warmup_epochs": 0, "learning_rate": 0.003})

    def adam_steps(out):
        checkpoint = find_latest_checkpoint(out / "checkpoints")
        state = load_checkpoint_state(checkpoint)["run"]["auxiliary_optimizer"]
        return {int(s["step"]) for s in state["state"].values()}

    rlagent.training.train(config.replace(n_timesteps=128), tmp_path / "straight")
    # Two auxiliary steps (32 samples, batches of 16) per rollout, four rollouts.
    assert adam_steps(tmp_path / "straight") == {8}
    rlagent.training.train(config, tmp_path / "resumed")
    assert adam_steps(tmp_path / "resumed") == {4}
    rlagent.training.train(config.replace(n_timesteps=128), tmp_path / "resumed", resume=True)
    assert adam_steps(tmp_path / "resumed") == {8}


class PickColourEnv(ColourEnv):
    """The reward is 1 for naming the colour the text names, 0 otherwise."""

    def step(self, action):
        return self._obs(), float(action == self.colour), True, False, {}


def _bottleneck_model(env=ColourEnv, belief_noise=0.0, **kwargs):
    return make_ppo(
        env,
        encoder="tiny-random",
        n_envs=2,
        seed=0,
        max_length=8,
        auxiliary_targets=True,
        auxiliary={"bottleneck": True, "belief_noise": belief_noise},
        policy_kwargs={"net_arch": [16]},
        learning_rate=3e-3,
        **SMALL,
        **kwargs,
    )


@pytest.mark.parametrize("encoder_layers", [None, [-1, 1]])
def test_a_bottleneck_actor_reads_text_only_through_the_detached_prediction(encoder_layers):
    model = _bottleneck_model(encoder_layers=encoder_layers)
    extractor = model.policy.mlp_extractor
    assert isinstance(extractor, AuxiliaryBottleneck)
    features_dim = model.policy.features_extractor.features_dim
    # One 32-wide segment per pooled layer (tiny-random), then 1 feature and 2 privileged.
    assert features_dim == 32 * len(encoder_layers or [-1]) + 1 + 2
    features = torch.rand(3, features_dim, requires_grad=True)
    extractor.forward_actor(features).sum().backward()
    grad = features.grad.abs().sum(dim=0)
    numeric = model.policy.features_extractor.layout.numeric
    assert [name for name, _ in numeric] == ["features", PRIVILEGED_KEY]
    text_columns = features_dim - sum(size for _, size in numeric)
    assert torch.all(grad[:text_columns] == 0)  # embeddings: only via the detached head
    assert grad[text_columns] > 0  # the "features" entry is read directly
    assert torch.all(grad[text_columns + 1 :] == 0)  # the privileged entry is never read
    # The prediction itself does read the text (and not the privileged entry).
    features.grad = None
    extractor.predict(features).sum().backward()
    grad = features.grad.abs().sum(dim=0)
    assert grad[:text_columns].sum() > 0 and torch.all(grad[text_columns + 1 :] == 0)


def test_ppo_alone_leaves_the_bottleneck_prediction_untouched():
    model = _bottleneck_model(PickColourEnv)
    head = model.policy.mlp_extractor.head.weight.detach().clone()
    actor = model.policy.mlp_extractor.actor[0].weight.detach().clone()
    model.learn(128)
    assert torch.equal(model.policy.mlp_extractor.head.weight, head)
    assert not torch.equal(model.policy.mlp_extractor.actor[0].weight, actor)


def test_a_bottleneck_actor_learns_to_act_on_its_predictions(tmp_path):
    model = _bottleneck_model(PickColourEnv)
    model.learn(2048, callback=AuxiliaryLoss(1.0, epochs=4))
    env = PickColourEnv()
    convert = rlagent.agents.observation_function(env, model)
    chosen = []
    for colour in range(2):
        env.colour = colour
        action, _ = model.predict(convert(env._obs()), deterministic=True)
        chosen.append(int(action))
    assert chosen == [0, 1]
    rlagent.agents.save_model(model, tmp_path / "model")
    loaded = rlagent.agents.load(tmp_path / "model")
    assert isinstance(loaded.policy.mlp_extractor, AuxiliaryBottleneck)
    obs = convert(env._obs())
    tensor, _ = model.policy.obs_to_tensor(obs)
    with torch.no_grad():
        want = model.policy.get_distribution(tensor).distribution.probs
        got = loaded.policy.get_distribution(loaded.policy.obs_to_tensor(obs)[0])
    torch.testing.assert_close(got.distribution.probs, want)


def test_a_bottleneck_needs_auxiliary_targets():
    with pytest.raises(AuxiliaryTargetsError, match="needs auxiliary targets"):
        make_ppo(
            ColourEnv,
            encoder="tiny-random",
            n_envs=1,
            auxiliary={"bottleneck": True},
            **SMALL,
        )


def test_config_rejects_zero_auxiliary_epochs():
    with pytest.raises(ConfigError, match=re.escape("auxiliary.epochs = 0 is out of range")):
        TrainConfig(env_id="rlagent/CustomerService-v0", auxiliary={"epochs": 0})


def test_warmup_epochs_add_passes_over_the_first_rollout_only(monkeypatch):
    import rlagent.agents.auxiliary as auxiliary

    calls = []
    real = auxiliary.auxiliary_loss
    monkeypatch.setattr(auxiliary, "auxiliary_loss", lambda *a: calls.append(1) or real(*a))
    model = _model()
    model.learn(3 * 64, callback=AuxiliaryLoss(1.0, epochs=1, warmup_epochs=3))
    # 3 rollouts of 2 envs x 32 steps = 2 minibatches of 32 each: 3 + 1 + 1 passes.
    assert len(calls) == (3 + 1 + 1) * 2
    calls.clear()
    model.learn(64, callback=AuxiliaryLoss(1.0, warmup_epochs=3), reset_num_timesteps=False)
    assert len(calls) == 2  # a model that has trained gets no warm-up


def test_a_separate_auxiliary_learning_rate_leaves_the_policy_optimizer_alone():
    model = _bottleneck_model()
    head = model.policy.mlp_extractor.head.weight.detach().clone()
    model.learn(64, callback=AuxiliaryLoss(1.0, learning_rate=1e-2))
    assert not torch.equal(model.policy.mlp_extractor.head.weight, head)
    # PPO's Adam never stepped the detached head: it holds no state for it.
    assert model.policy.mlp_extractor.head.weight not in model.policy.optimizer.state


@pytest.mark.parametrize(
    "kwargs", [{"warmup_epochs": -1}, {"learning_rate": 0.0}, {"learning_rate": -1e-3}]
)
def test_auxiliary_loss_rejects_bad_warmup_and_learning_rate(kwargs):
    with pytest.raises(AuxiliaryTargetsError, match="warmup_epochs >= 0 and learning_rate > 0"):
        AuxiliaryLoss(1.0, **kwargs)


@pytest.mark.parametrize("field, value", [("warmup_epochs", -1), ("learning_rate", 0.0)])
def test_config_rejects_bad_auxiliary_settings(field, value):
    with pytest.raises(ConfigError, match=re.escape(f"auxiliary.{field} = {value!r} is out of")):
        TrainConfig(env_id="rlagent/CustomerService-v0", auxiliary={field: value})


def test_a_bottleneck_cannot_replace_the_candidate_scoring_head():
    with pytest.raises(AuxiliaryTargetsError, match="candidate-scoring head"):
        make_ppo(
            "rlagent/Recommendation-v0",
            encoder="tiny-random",
            n_envs=1,
            max_length=12,
            env_kwargs=dict(n_candidates=4, slate_size=2),
            auxiliary_targets=True,
            auxiliary={"bottleneck": True},
            policy_kwargs={"candidates": "candidates"},
            **SMALL,
        )


def _noisy_model(belief_noise=2.0):
    return _bottleneck_model(PickColourEnv, belief_noise=belief_noise)


def _colour_batch(model):
    observations = _colour_observations(model, PickColourEnv)
    batch = {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
    return model.policy.obs_to_tensor(batch)[0]


def test_belief_noise_perturbs_training_passes_only_and_the_same_way_each_time():
    model = _noisy_model()
    policy = model.policy
    obs = _colour_batch(model)
    actions = torch.tensor([0, 1])
    with torch.no_grad():
        clean = policy.get_distribution(obs).distribution.log_prob(actions)
        _, noisy, _ = policy.evaluate_actions(obs, actions)
        _, again, _ = policy.evaluate_actions(obs, actions)
        features = policy.extract_features(obs, policy.pi_features_extractor)
        shift = policy.mlp_extractor.belief_perturbation(features)
    torch.testing.assert_close(again, noisy)  # rollout and update see the same perturbation
    assert shift.abs().min() > 1e-3 and not torch.allclose(noisy, clean)
    # Predicting, evaluating and planning read the probe as it is.
    with torch.no_grad():
        _, plain, _ = _noisy_model(0.0).policy.evaluate_actions(obs, actions)
    torch.testing.assert_close(plain, clean)


def test_belief_noise_has_the_requested_spread_and_is_saved(tmp_path):
    model = _noisy_model(3.0)
    extractor = model.policy.mlp_extractor
    features = torch.rand(4000, model.policy.features_extractor.features_dim)
    shift = extractor.belief_perturbation(features)
    assert shift.shape == (4000, 2)
    assert abs(shift.mean().item()) < 0.2 and 2.7 < shift.std().item() < 3.3
    rlagent.agents.save_model(model, tmp_path / "model")
    loaded = rlagent.agents.load(tmp_path / "model")
    assert loaded.policy.belief_noise == 3.0
    torch.testing.assert_close(loaded.policy.mlp_extractor.belief_perturbation(features), shift)


def test_belief_noise_per_target_has_each_targets_spread_and_is_saved(tmp_path):
    model = _noisy_model([1.0, 4.0])
    features = torch.rand(4000, model.policy.features_extractor.features_dim)
    shift = model.policy.mlp_extractor.belief_perturbation(features)
    assert 0.9 < shift[:, 0].std().item() < 1.1 and 3.6 < shift[:, 1].std().item() < 4.4
    # The same waves as one shared spread, scaled per target.
    shared = _noisy_model(2.0).policy.mlp_extractor.belief_perturbation(features)
    torch.testing.assert_close(shift, shared * torch.tensor([0.5, 2.0]))
    rlagent.agents.save_model(model, tmp_path / "model")
    loaded = rlagent.agents.load(tmp_path / "model")
    assert loaded.policy.belief_noise == (1.0, 4.0)
    torch.testing.assert_close(loaded.policy.mlp_extractor.belief_perturbation(features), shift)


def test_belief_noise_of_zeros_is_off():
    model = _noisy_model([0.0, 0.0])
    obs = _colour_batch(model)
    actions = torch.tensor([0, 1])
    with torch.no_grad():
        clean = model.policy.get_distribution(obs).distribution.log_prob(actions)
        _, trained, _ = model.policy.evaluate_actions(obs, actions)
    torch.testing.assert_close(trained, clean)


NOISE_FIX = "expected a standard deviation >= 0 in logits"


@pytest.mark.parametrize(
    ("auxiliary", "error", "match"),
    [
        ({"belief_noise": 1.0}, ConfigError, "set auxiliary.bottleneck: true too"),
        ({"bottleneck": True, "belief_noise": -1.0}, ConfigError, NOISE_FIX),
        ({"bottleneck": True, "belief_noise": [1.0, -1.0]}, ConfigError, NOISE_FIX),
        ({"bottleneck": True, "belief_noise": "high"}, ConfigError, NOISE_FIX),
        ({"bottleneck": True, "belief_noise": []}, ConfigError, NOISE_FIX),
        (
            {"bottleneck": True, "belief_noise": [1.0, 2.0, 3.0]},
            AuxiliaryTargetsError,
            "3 values for 2",
        ),
    ],
)
def test_bad_belief_noise_is_rejected(auxiliary, error, match):
    with pytest.raises(error, match=re.escape(match)):
        make_ppo(
            ColourEnv,
            encoder="tiny-random",
            n_envs=1,
            auxiliary_targets=True,
            auxiliary=auxiliary,
            **SMALL,
        )
