from __future__ import annotations

import io
import re
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlagent.agents import (
    TextActorCriticPolicy,
    load,
    make_ppo,
    make_vec_env,
    save_model,
    spec_of,
    wrap_for_model,
)
from rlagent.encoders import EncoderChecksumError, load_encoder, tiny
from rlagent.wrappers import TokenizeText


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Shared CPU cores: oversubscribed intra-op threads make tiny models much slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


INTENTS = {
    0: ["i want my money back", "please refund the order", "refund please"],
    1: ["my card was stolen", "i lost my card", "block my card now"],
}
SMALL = dict(n_steps=32, batch_size=32, n_epochs=2)


class IntentEnv(gym.Env):
    """A user's one-step text task: read a request, answer with its intent (reward 1 if right)."""

    observation_space = spaces.Dict(
        {"request": spaces.Text(60), "bias": spaces.Box(0.0, 1.0, (1,), np.float32)}
    )
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.intent = int(self.np_random.integers(2))
        text = INTENTS[self.intent][int(self.np_random.integers(3))]
        return {"request": text, "bias": np.ones(1, np.float32)}, {}

    def step(self, action):
        reward = float(int(action) == self.intent)
        obs = {"request": "", "bias": np.zeros(1, np.float32)}
        return obs, reward, True, False, {}


def _bert_state(model):
    return {
        k: v.detach().clone() for k, v in model.policy.features_extractor.model.state_dict().items()
    }


def _fresh_state():
    return load_encoder("tiny-random").model.state_dict()


def _accuracy(model, episodes=30):
    env = wrap_for_model(IntentEnv(), model)
    correct = 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=1000 + ep)
        action, _ = model.predict(obs, deterministic=True)
        _, reward, *_ = env.step(action)
        correct += reward
    return correct / episodes


def test_user_defined_text_env_learns_with_frozen_encoder():
    model = make_ppo(
        IntentEnv(),
        encoder="tiny-random",
        seed=0,
        n_envs=4,
        n_steps=64,
        batch_size=64,
        learning_rate=3e-3,
    )
    model.learn(768)
    assert _accuracy(model) >= 0.9
    info = model.policy.features_extractor.cache_info()
    assert info.size == 6 and info.hit_rate > 0.9


@pytest.mark.parametrize("mode", ["frozen", "lora", "full"])
def test_ortho_init_leaves_pretrained_weights_alone(mode):
    if mode == "lora":
        pytest.importorskip("peft")
    model = make_ppo(
        IntentEnv(), encoder="tiny-random", encoder_mode=mode, seed=0, n_envs=1, **SMALL
    )
    assert model.policy.ortho_init
    assert isinstance(model.policy, TextActorCriticPolicy)
    ext = model.policy.features_extractor
    fresh = _fresh_state()
    base = ext.model.get_base_model() if mode == "lora" else ext.model
    current = {k.replace(".base_layer", ""): v for k, v in base.state_dict().items()}
    for key, value in fresh.items():
        # Frozen weights may run in bfloat16 on this CPU: compare in the weights' dtype.
        assert torch.equal(current[key], value.to(current[key].dtype)), key
    if mode == "lora":
        lora_b = [p for n, p in ext.model.named_parameters() if "lora_B" in n]
        assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b)
    # The heads were initialised orthogonally (weights differ from PyTorch's default init scale).
    w = model.policy.action_net.weight
    assert torch.allclose(w @ w.T, (0.01**2) * torch.eye(w.shape[0]), atol=1e-6)


def test_frozen_bert_is_bit_identical_after_learn():
    model = make_ppo(IntentEnv(), encoder="tiny-random", seed=0, n_envs=2, **SMALL)
    before = _bert_state(model)
    heads_before = model.policy.action_net.weight.detach().clone()
    model.learn(128)
    after = _bert_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(heads_before, model.policy.action_net.weight)


def test_lora_trains_only_adapters():
    pytest.importorskip("peft")
    model = make_ppo(
        IntentEnv(), encoder="tiny-random", encoder_mode="lora", seed=0, n_envs=2, **SMALL
    )
    before = _bert_state(model)
    model.learn(128)
    after = _bert_state(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)
    assert any("lora_B" in k for k in changed)


def test_full_mode_changes_bert():
    model = make_ppo(
        IntentEnv(), encoder="tiny-random", encoder_mode="full", seed=0, n_envs=2, **SMALL
    )
    before = _bert_state(model)
    model.learn(128)
    after = _bert_state(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("mode", ["frozen", "full"])
def test_dropout_is_off_during_updates(mode):
    # tiny-random has dropout 0.1: log-probs in training mode must equal eval-mode ones.
    model = make_ppo(
        IntentEnv(), encoder="tiny-random", encoder_mode=mode, seed=0, n_envs=1, **SMALL
    )
    env = wrap_for_model(IntentEnv(), model)
    obs, _ = env.reset(seed=3)
    obs_t, _ = model.policy.obs_to_tensor(obs)
    actions = torch.tensor([1])
    model.policy.set_training_mode(False)
    _, logp_eval, _ = model.policy.evaluate_actions(obs_t, actions)
    model.policy.set_training_mode(True)
    _, logp_train, _ = model.policy.evaluate_actions(obs_t, actions)
    torch.testing.assert_close(logp_eval, logp_train)


def _zip_members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.mark.parametrize("mode", ["frozen", "lora", "full"])
def test_save_load_round_trip_and_encoder_stored_at_most_once(tmp_path, mode):
    if mode == "lora":
        pytest.importorskip("peft")
    model = make_ppo(
        IntentEnv(), encoder="tiny-random", encoder_mode=mode, seed=0, n_envs=2, **SMALL
    )
    model.learn(64)
    path = tmp_path / "agent.zip"
    model.save(path)
    members = _zip_members(path)
    policy_sd = torch.load(io.BytesIO(members["policy.pth"]), map_location="cpu")
    bert_bytes = sum(v.numel() * 4 for v in _fresh_state().values())
    # SB3 registers the shared extractor under three names; torch.save writes shared storage once.
    storages = {}
    for key, value in policy_sd.items():
        storages[value.untyped_storage().data_ptr()] = (key, value.untyped_storage().nbytes())
    stored_bert = sum(n for key, n in storages.values() if "text_model" in key)
    stored_total = sum(n for _, n in storages.values())
    assert len(members["policy.pth"]) < stored_total + 100_000
    if mode == "frozen":
        assert stored_bert == 0
        assert not any("embeddings" in k or "encoder.layer" in k for k in policy_sd)
    else:
        assert bert_bytes <= stored_bert < 1.2 * bert_bytes  # once (lora: base + adapters)
    # Never pickled into the data blob (as an nn.Module passed through kwargs would be).
    assert len(members["data"]) < 50_000

    loaded = load(path, device="cpu", trust=True)  # a zip this test wrote
    assert spec_of(loaded) == model.rlagent_spec
    assert loaded.rlagent_spec["encoder"] == "tiny-random"
    env = wrap_for_model(IntentEnv(), loaded)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        a1, _ = model.predict(obs, deterministic=True)
        a2, _ = loaded.predict(obs, deterministic=True)
        assert a1 == a2
        obs_t, _ = model.policy.obs_to_tensor(obs)
        with torch.no_grad():
            torch.testing.assert_close(
                model.policy.get_distribution(obs_t).distribution.logits,
                loaded.policy.get_distribution(obs_t).distribution.logits,
            )


def test_load_verifies_the_encoder_checksum(tmp_path, monkeypatch):
    model = make_ppo(IntentEnv(), encoder="tiny-random", seed=0, n_envs=1, **SMALL)
    path = save_model(model, tmp_path / "agent")
    monkeypatch.setattr(tiny, "tiny_random_checksum", lambda: "f" * 64)
    with pytest.raises(
        EncoderChecksumError, match=re.escape("on this machine has checksum " + "f" * 64)
    ):
        load(path, device="cpu")


def test_load_attaches_an_env_and_keeps_training(tmp_path):
    model = make_ppo(IntentEnv(), encoder="tiny-random", seed=0, n_envs=1, **SMALL)
    path = save_model(model, tmp_path / "agent")
    loaded = load(path, env=IntentEnv(), device="cpu")
    loaded.learn(32)
    assert loaded.num_timesteps >= 32


def test_make_vec_env_is_tokenized_monitored_and_seeded():
    vec = make_vec_env(IntentEnv, n_envs=2, seed=7, encoder="tiny-random", max_length=12)
    assert vec.observation_space["request_input_ids"].shape == (1, 12)
    obs = vec.reset()
    vec2 = make_vec_env(IntentEnv, n_envs=2, seed=7, encoder="tiny-random", max_length=12)
    np.testing.assert_array_equal(obs["request_input_ids"], vec2.reset()["request_input_ids"])
    _, _, dones, infos = vec.step(np.array([0, 1]))
    assert dones.all() and "episode" in infos[0]


def test_make_ppo_accepts_a_tokenized_vec_env_and_wrap_is_idempotent():
    vec = make_vec_env(IntentEnv, n_envs=2, seed=0, encoder="tiny-random", max_length=10)
    model = make_ppo(vec, encoder="tiny-random", seed=0, **SMALL)
    assert model.rlagent_spec["max_length"] == 10
    wrapped = wrap_for_model(IntentEnv(), model)
    assert isinstance(wrapped, TokenizeText)
    assert wrap_for_model(wrapped, model) is wrapped


def test_make_ppo_rejects_modules_in_extractor_kwargs():
    with pytest.raises(
        TypeError, match=re.escape("features_extractor_kwargs['encoder'] is an nn.Module")
    ):
        make_ppo(
            IntentEnv(),
            encoder="tiny-random",
            n_envs=1,
            policy_kwargs={"features_extractor_kwargs": {"encoder": torch.nn.Linear(1, 1)}},
        )


def test_learn_without_tensorboard_leaves_no_folder_in_the_temp_dir(tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = make_ppo(IntentEnv(), encoder="tiny-random", seed=0, n_envs=1, n_steps=8, batch_size=8)
    model.learn(8)
    model.learn(8, reset_num_timesteps=False)
    assert [p.name for p in tmp_path.glob("SB3-*")] == []
    # verbose=1 still prints the training table, from a logger without a folder.
    model.verbose = 1
    model.learn(8, reset_num_timesteps=False)
    assert "total_timesteps" in capsys.readouterr().out
    assert [p.name for p in tmp_path.glob("SB3-*")] == []
