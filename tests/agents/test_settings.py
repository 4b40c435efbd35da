"""Agent settings: one source of defaults, the auxiliary group, and older configs."""

from __future__ import annotations

import re
import warnings

import pytest
import yaml

from rlagent.agents import AgentConfig, AuxiliaryConfig, ConfigError, make_ppo
from rlagent.training import TrainConfig, load_config

AGENT_FIELDS = set(AgentConfig().to_dict())


def test_a_training_run_and_make_ppo_share_the_agent_defaults():
    run = TrainConfig(env_id="toyenv:ToyKeyword-v0").to_dict()
    assert {k: run[k] for k in AGENT_FIELDS} == AgentConfig().to_dict()
    assert load_config("toyenv:ToyKeyword-v0").agent_config() == AgentConfig()


def test_a_bundled_env_has_its_own_agent_settings():
    config = AgentConfig.for_env("rlagent/CustomerService-v0")
    assert config == load_config("rlagent/CustomerService-v0").agent_config()
    assert config.n_envs == 8 and config.max_length == 48 and config.encoder_layers == [-1, 3]
    assert config.auxiliary == AuxiliaryConfig(
        coef=1.0, epochs=4, warmup_epochs=50, learning_rate=0.003, bottleneck=True, belief_noise=3.0
    )
    assert "auxiliary_bottleneck" not in config.policy_kwargs
    assert AgentConfig.for_env("someone/Unknown-v0") == AgentConfig()


def test_overrides_merge_into_groups_key_by_key():
    config = AgentConfig.for_env("rlagent/CustomerService-v0").merged(
        {"auxiliary": {"coef": 0.5}, "ppo": {"n_steps": 16}, "max_length": None}
    )
    assert config.auxiliary.coef == 0.5 and config.auxiliary.bottleneck
    assert config.ppo["n_steps"] == 16 and config.ppo["batch_size"] == 256
    assert config.max_length == 48
    assert config.ppo_kwargs()["n_steps"] == 16 and config.ppo_kwargs()["vf_coef"] == 0.5


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auxiliary": {"coeff": 1.0}}, "unknown auxiliary setting(s) coeff; known auxiliary"),
        ({"auxiliary": 1.0}, "auxiliary must be a mapping of auxiliary settings"),
        ({"auxiliary": {"coef": -1}}, "auxiliary.coef = -1 is out of range; expected a number"),
        ({"auxiliary": {"epochs": 1.5}}, "auxiliary.epochs = 1.5 is out of range"),
        (
            {"auxiliary": {"belief_noise": 2.0}},
            "perturbs the predictions a bottleneck actor reads; set auxiliary.bottleneck: true",
        ),
        (
            {"auxiliary": {"bottleneck": True}},
            "but auxiliary.coef = 0.0 trains no head; set auxiliary.coef > 0",
        ),
        (
            {"policy_kwargs": {"belief_noise": 2.0}},
            "policy_kwargs.belief_noise is a setting of the auxiliary group now; write "
            "auxiliary: {belief_noise: ...} instead",
        ),
        ({"max_length": 1}, "max_length = 1 is out of range; expected an integer >= 2"),
        ({"dtype": "half"}, "dtype = 'half'; expected one of 'auto', 'float32', 'bfloat16'"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(env_id="toyenv:ToyKeyword-v0", **settings)


OLD_LAYOUT = """
auxiliary_coef: 1.0
auxiliary_epochs: 4
auxiliary_learning_rate: 0.003
policy_kwargs:
  net_arch: [64]
  auxiliary_bottleneck: true
  belief_noise: [1.0, 2.0]
"""
NEW_LAYOUT = """
auxiliary:
  coef: 1.0
  epochs: 4
  learning_rate: 0.003
  bottleneck: true
  belief_noise: [1.0, 2.0]
policy_kwargs:
  net_arch: [64]
"""


def test_older_flat_auxiliary_settings_are_read_with_a_warning(tmp_path):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD_LAYOUT)
    new.write_text(NEW_LAYOUT)
    with pytest.warns(FutureWarning, match=re.escape("write auxiliary: {coef: ...")):
        translated = load_config("toyenv:ToyKeyword-v0", config_file=old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = load_config("toyenv:ToyKeyword-v0", config_file=new)
    assert translated == written
    assert written.auxiliary.belief_noise == (1.0, 2.0)
    # A run directory's config.yaml (older or not) reads back as the same config.
    saved = yaml.safe_load(yaml.safe_dump(written.to_dict()))
    assert TrainConfig.from_dict(saved) == written
    both = tmp_path / "both.yaml"
    both.write_text("auxiliary_coef: 1.0\nauxiliary:\n  coef: 0.5\n")
    with pytest.raises(ConfigError, match=re.escape("auxiliary.coef is given twice")):
        load_config("toyenv:ToyKeyword-v0", config_file=both)


def test_make_ppo_refuses_to_drop_a_trained_auxiliary_head():
    with pytest.raises(ValueError, match=re.escape("pass auxiliary={'coef': 0.0} for an agent")):
        make_ppo(
            "rlagent/CustomerService-v0",
            encoder="tiny-random",
            encoder_layers=[-1],
            n_envs=1,
            auxiliary_targets=False,
        )
