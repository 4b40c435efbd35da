import re

import pytest

from rlagent.training import ConfigError, TrainConfig, load_config, parse_kwargs


def test_bundled_yaml_is_loaded_and_overrides_apply(tmp_path):
    config = load_config("rlagent/CustomerService-v0")
    assert config.n_envs == 8
    assert config.eval_env_kwargs == {"split": "val"}
    user = tmp_path / "user.yaml"
    user.write_text("n_envs: 2\nppo:\n  learning_rate: 0.001\n")
    config = load_config(
        "rlagent/CustomerService-v0",
        config_file=user,
        env_kwargs={"noise": 0.1},
        n_timesteps=1234,
        seed=None,
    )
    assert config.n_envs == 2
    assert config.n_timesteps == 1234
    assert config.ppo["learning_rate"] == 0.001
    assert config.ppo["n_steps"] == 128  # kept from the bundled file
    assert config.env_kwargs == {"split": "train", "noise": 0.1}
    assert config.resolved_eval_env_kwargs == {"split": "val", "noise": 0.1}


def test_unknown_setting_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_env: 2\n")
    with pytest.raises(ConfigError, match=re.escape("unknown setting(s) n_env")):
        load_config("rlagent/CustomerService-v0", config_file=bad)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("rlagent/CustomerService-v0", config_file=tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config("rlagent/CustomerService-v0", config_file=bad)


def test_out_of_range_values_are_rejected():
    with pytest.raises(ConfigError, match=re.escape("n_envs = 0 is out of range")):
        TrainConfig(env_id="x", n_envs=0)
    with pytest.raises(ConfigError, match=re.escape("reward_scale = -0.1 is out of range")):
        TrainConfig(env_id="x", reward_scale=-0.1)
    with pytest.raises(ConfigError, match="encoder_mode = 'frozn'"):
        TrainConfig(env_id="x", encoder_mode="frozn")
    with pytest.raises(ConfigError, match="pooling = 'max'; expected one of 'mean', 'cls'"):
        TrainConfig(env_id="x", pooling="max")
    for layers in ([], "3", [1.5], [True]):
        with pytest.raises(ConfigError, match=re.escape("expected a non-empty list of hidden")):
            TrainConfig(env_id="x", encoder_layers=layers)
    assert TrainConfig(env_id="x", encoder_layers=[-1, 3]).encoder_layers == [-1, 3]
    with pytest.raises(ConfigError, match=re.escape("average_checkpoints = -1 is out of range")):
        TrainConfig(env_id="x", average_checkpoints=-1)
    with pytest.raises(ConfigError, match=re.escape("set keep_checkpoints: 4 or more")):
        TrainConfig(env_id="x", average_checkpoints=3, keep_checkpoints=3)
    assert TrainConfig(env_id="x", average_checkpoints=3, keep_checkpoints=4).average_checkpoints


@pytest.mark.parametrize(
    "ppo, message",
    [
        ({"learning_rate": "lin_x"}, "ppo.learning_rate = 'lin_x'; expected a number or 'lin_"),
        ({"clip_range": "lin_-0.2"}, "ppo.clip_range = 'lin_-0.2'; expected a number or 'lin_"),
        ({"learning_rate": "cos_0.1"}, "ppo.learning_rate = 'cos_0.1'; expected a number"),
        ({"n_epochs": "lin_10"}, "ppo.n_epochs = 'lin_10': only learning_rate, clip_range take"),
    ],
)
def test_malformed_schedules_are_rejected(ppo, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(env_id="x", ppo=ppo)


def test_parse_kwargs_reads_yaml_scalars():
    assert parse_kwargs(["split=test", "noise=0.1", "vague=true", "name="]) == {
        "split": "test",
        "noise": 0.1,
        "vague": True,
        "name": "",
    }
    with pytest.raises(ConfigError, match=re.escape("Expected KEY=VALUE, got 'split'")):
        parse_kwargs(["split"])
