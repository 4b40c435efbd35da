"""The safe model format: save_model -> load_model round trips, exact resumption, file errors."""

from __future__ import annotations

import json
import re
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.utils import LinearSchedule

from rlagent.agents import (
    AgentConfig,
    ModelEnvMismatchError,
    ModelFileError,
    UnsupportedModelError,
    load_model,
    make_ppo,
    make_vec_env,
    save_model,
    wrap_for_model,
)
from rlagent.agents.loading import read_policy_state
from rlagent.agents.saving import file_sha256, read_manifest

CS = "rlagent/CustomerService-v0"
REC = "rlagent/Recommendation-v0"
# The plain agent (not the env's bundled config), small enough for a test.
TINY = dict(
    config=AgentConfig(),
    encoder="tiny-random",
    encoder_layers=[-1],
    seed=0,
    device="cpu",
    max_length=16,
)
SMALL = dict(n_steps=8, batch_size=8, n_epochs=2)
HEADS = {"net_arch": {"pi": [16], "vf": [16]}}

VARIANTS = {
    "plain": (CS, {}),
    "auxiliary_bottleneck": (
        CS,
        dict(
            auxiliary_targets=True,
            policy_kwargs={"auxiliary_bottleneck": True, "belief_noise": 1.0, **HEADS},
        ),
    ),
    "action_masks": (CS, dict(action_masks=True)),
    "candidate_slates": (
        REC,
        dict(
            privileged_critic=True,
            policy_kwargs={"candidates": "candidates", "shorter_slates": True, **HEADS},
        ),
    ),
    "candidate_single": (
        REC,
        dict(env_kwargs={"slate_size": 1}, policy_kwargs={"candidates": "candidates", **HEADS}),
    ),
}


def _model(name: str, **kwargs) -> PPO:
    env_id, options = VARIANTS[name]
    return make_ppo(env_id, n_envs=1, **TINY, **SMALL, **{**options, **kwargs})


def _observations(model: PPO, n: int = 5) -> list[dict]:
    spec = model.rlagent_spec
    env = wrap_for_model(gym.make(spec["env_id"], **spec["env_kwargs"]), model)
    obs, _ = env.reset(seed=3)
    env.action_space.seed(3)
    out = [obs]
    while len(out) < n:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        out.append(obs)
    return out


def _assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _assert_same_behaviour(a: PPO, b: PPO) -> None:
    for obs in _observations(a):
        want, got = a.predict(obs, deterministic=True)[0], b.predict(obs, deterministic=True)[0]
        assert np.array_equal(want, got)
        tensor, _ = a.policy.obs_to_tensor(obs)
        with torch.no_grad():
            assert torch.equal(a.policy.predict_values(tensor), b.policy.predict_values(tensor))
        torch.manual_seed(7)
        sampled_a = a.predict(obs, deterministic=False)[0]
        torch.manual_seed(7)
        sampled_b = b.predict(obs, deterministic=False)[0]
        assert np.array_equal(sampled_a, sampled_b)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_saved_model_loads_with_the_same_parameters_and_predictions(tmp_path, variant):
    model = _model(variant)
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model", device="cpu")
    assert type(loaded.policy) is type(model.policy)
    _assert_same_parameters(model.policy, loaded.policy)
    _assert_same_behaviour(model, loaded)
    assert loaded.rlagent_spec == model.rlagent_spec
    assert loaded.observation_space == model.observation_space
    assert loaded.action_space == model.action_space
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "manifest.json",
        "model.safetensors",
    ]


def test_a_trainable_encoder_is_saved_once_under_its_shared_names(tmp_path):
    model = _model("plain", encoder_mode="full")
    model.learn(8)
    save_model(model, tmp_path / "model", include_optimizer=True)
    manifest = read_manifest(tmp_path / "model")
    aliases = manifest["files"]["model.safetensors"]["aliases"]
    assert aliases and all(k.startswith(("pi_features", "vf_features")) for k in aliases)
    assert set(aliases.values()) <= set(model.policy.state_dict())
    assert manifest["encoder"]["weights_in_file"] is True
    loaded = load_model(tmp_path / "model", device="cpu")
    _assert_same_parameters(model.policy, loaded.policy)
    assert loaded.policy.pi_features_extractor is loaded.policy.features_extractor
    _assert_same_behaviour(model, loaded)


def test_the_manifest_describes_the_agent_in_plain_json(tmp_path):
    model = _model("action_masks", learning_rate=LinearSchedule(1e-3, 0.0, 1.0))
    save_model(model, tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["format"] == "rlagent-model" and manifest["format_version"] == 1
    assert manifest["algorithm"] == "PPO"
    assert manifest["policy"]["class"] == "rlagent.agents.TextActorCriticPolicy"
    kwargs = manifest["policy"]["kwargs"]
    assert kwargs["activation_fn"] == "torch.nn.Tanh"
    assert kwargs["features_extractor_class"] == "rlagent.encoders.TextFeaturesExtractor"
    assert kwargs["features_extractor_kwargs"]["encoder"] == "tiny-random"
    assert kwargs["action_mask"] == "action_mask"
    assert manifest["ppo"]["learning_rate"] == "lin_0.001"
    assert manifest["ppo"]["n_steps"] == 8
    assert manifest["encoder"]["checksum"] == model.rlagent_spec["encoder_checksum"]
    assert manifest["action_space"] == {"type": "Discrete", "n": 14, "start": 0, "dtype": "int64"}
    mask = manifest["observation_space"]["spaces"]["action_mask"]
    assert mask == {"type": "Box", "shape": [14], "dtype": "float32", "low": 0.0, "high": 1.0}
    loaded = load_model(tmp_path / "model", device="cpu")
    assert isinstance(loaded.learning_rate, LinearSchedule)
    assert loaded.lr_schedule(0.5) == pytest.approx(5e-4)


def test_an_optimizer_round_trip_continues_training_exactly_like_an_sb3_save(tmp_path):
    model = make_ppo(CS, n_envs=2, learning_rate=LinearSchedule(1e-3, 0.0, 1.0), **TINY, **SMALL)
    model.learn(16)
    model.save(tmp_path / "model.zip")
    save_model(model, tmp_path / "with_optimizer", include_optimizer=True)
    save_model(model, tmp_path / "weights_only")

    def continued(load):
        venv = make_vec_env(CS, n_envs=2, seed=5, encoder="tiny-random", max_length=16)
        loaded = load(venv)
        loaded.learn(32, reset_num_timesteps=False)
        assert loaded.num_timesteps == 48
        return loaded.policy

    def sb3(venv):
        loaded = PPO.load(tmp_path / "model.zip", device="cpu")
        loaded.set_env(venv)
        return loaded

    reference = continued(sb3)
    exact = continued(lambda venv: load_model(tmp_path / "with_optimizer", env=venv, device="cpu"))
    _assert_same_parameters(reference, exact)
    fresh = continued(lambda venv: load_model(tmp_path / "weights_only", env=venv, device="cpu"))
    assert not torch.equal(
        reference.state_dict()["action_net.weight"], fresh.state_dict()["action_net.weight"]
    )


def test_load_model_attaches_an_env_id_a_raw_env_or_a_vec_env(tmp_path):
    model = _model("action_masks")
    save_model(model, tmp_path / "model")
    by_id = load_model(tmp_path / "model", env=CS, device="cpu")
    raw = load_model(tmp_path / "model", env=gym.make(CS), device="cpu")
    for loaded in (by_id, raw):
        assert loaded.get_env().num_envs == 1
        loaded.learn(8)
    vec = make_vec_env(CS, n_envs=3, encoder="tiny-random", max_length=16, action_masks=True)
    assert load_model(tmp_path / "model", env=vec, device="cpu").n_envs == 3


def test_an_env_that_is_not_the_models_is_refused_in_one_line(tmp_path):
    save_model(_model("plain"), tmp_path / "model")
    with pytest.raises(ModelEnvMismatchError, match=re.escape("pass the env the model was")):
        load_model(tmp_path / "model", env=REC, device="cpu")


def test_save_model_replaces_a_model_but_never_a_foreign_directory(tmp_path):
    model = _model("plain")
    save_model(model, tmp_path / "model")
    save_model(model, tmp_path / "model", include_optimizer=True)
    assert (tmp_path / "model" / "optimizer.safetensors").is_file()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    with pytest.raises(
        ModelFileError, match=re.escape(f"{notes} exists and is not a saved model;")
    ):
        save_model(model, notes)
    assert (notes / "todo.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_custom_schedule_cannot_be_saved(tmp_path):
    model = _model("plain", learning_rate=lambda progress: 1e-3 * progress)
    with pytest.raises(UnsupportedModelError, match=re.escape("PPO learning_rate is <function")):
        save_model(model, tmp_path / "model")
    assert not (tmp_path / "model").exists()


# ----------------------------------------------------------------------------- one-line errors
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "model"
    save_model(_model("plain"), path)
    return path


@pytest.fixture
def copy(saved, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(saved, target)
    return target


def _edit_manifest(path, edit):
    file = path / "manifest.json"
    manifest = json.loads(file.read_text())
    edit(manifest)
    file.write_text(json.dumps(manifest))


def test_a_missing_path_is_reported_with_what_is_there(tmp_path):
    with pytest.raises(ModelFileError, match=re.escape(f"No model at {tmp_path / 'nope'}")):
        load_model(tmp_path / "nope")
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "manifest.json").write_text("{}")
    with pytest.raises(ModelFileError, match=re.escape(f"did you mean {tmp_path / 'agent'}?")):
        load_model(tmp_path / "agent.zip")


def test_a_run_directory_suggests_its_model(tmp_path, saved):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("env_id: x\n")
    shutil.copytree(saved, run / "model")
    with pytest.raises(
        ModelFileError,
        match=re.escape(f"{run} is a run directory, not a model; did you mean {run / 'model'}?"),
    ):
        load_model(run)


def test_a_folder_without_manifest_is_not_a_model(tmp_path):
    with pytest.raises(ModelFileError, match=re.escape(f"{tmp_path} has no manifest.json")):
        load_model(tmp_path)


def test_a_malformed_manifest_is_reported(copy):
    (copy / "manifest.json").write_text('{"format": "rlagent-model", ')
    with pytest.raises(ModelFileError, match=re.escape("manifest.json is not valid JSON")):
        load_model(copy)


def test_a_manifest_missing_an_entry_is_reported(copy):
    _edit_manifest(copy, lambda m: m.pop("policy"))
    with pytest.raises(
        ModelFileError, match=re.escape("manifest.json is malformed: manifest.json has no 'policy'")
    ):
        load_model(copy)


def test_an_unknown_format_version_is_refused(copy):
    _edit_manifest(copy, lambda m: m.update(format_version=99))
    with pytest.raises(
        ModelFileError, match=re.escape("is in model format version 99, but rlagent")
    ):
        load_model(copy)


def test_a_class_outside_the_allowed_list_is_never_imported(copy):
    _edit_manifest(copy, lambda m: m["policy"]["kwargs"].update(activation_fn="os.system"))
    with pytest.raises(
        ModelFileError, match=re.escape("names class 'os.system', which is not one a safe model")
    ):
        load_model(copy)


def test_a_truncated_weights_file_is_reported(copy):
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(
        ModelFileError, match=re.escape("model.safetensors is truncated or corrupt")
    ):
        load_model(copy)


def test_a_corrupt_weights_file_is_reported_even_with_a_matching_checksum(copy):
    weights = copy / "model.safetensors"
    weights.write_bytes(b"\xff" * 64)
    digest = file_sha256(weights)
    _edit_manifest(copy, lambda m: m["files"]["model.safetensors"].update(sha256=digest))
    with pytest.raises(ModelFileError, match=re.escape("is not a readable safetensors file")):
        load_model(copy)


def test_weights_of_another_architecture_are_refused(copy, tmp_path):
    other = tmp_path / "other"
    save_model(_model("plain", policy_kwargs={"net_arch": {"pi": [8], "vf": [8]}}), other)
    shutil.copy(other / "model.safetensors", copy / "model.safetensors")
    digest = file_sha256(copy / "model.safetensors")
    _edit_manifest(copy, lambda m: m["files"]["model.safetensors"].update(sha256=digest))
    with pytest.raises(
        ModelFileError, match=re.escape("model.safetensors does not fit the architecture in")
    ):
        load_model(copy)


def test_read_policy_state_gives_the_weights_without_building_a_model(tmp_path):
    model = _model("plain", encoder_mode="full")
    save_model(model, tmp_path / "model")
    state = read_policy_state(tmp_path / "model")
    own = model.policy.state_dict()
    assert sorted(state) == sorted(own)
    assert all(torch.equal(state[key], own[key]) for key in own)


def test_read_manifest_reads_no_weights(saved):
    manifest = read_manifest(saved)
    assert manifest["rlagent_spec"]["env_id"] == CS
    assert manifest["training"]["num_timesteps"] == 0
