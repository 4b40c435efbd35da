"""Building envs from ids: kwargs checked against the constructor, ids and modules found."""

from __future__ import annotations

import re
import sys
import textwrap

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.registration import registry

from rlagent.env_making import (
    EnvKwargsError,
    UnknownEnvError,
    check_env_kwargs,
    find_env_spec,
    make_env,
)
from rlagent.evaluation import evaluate

CS = "rlagent/CustomerService-v0"


def test_a_misspelled_kwarg_names_the_close_one_and_all_arguments():
    with pytest.raises(
        EnvKwargsError,
        match=re.escape(
            f"{CS} has no keyword argument 'splt'; did you mean 'split'? Its arguments: "
            "render_mode, split, dataset, groups,"
        ),
    ):
        make_env(CS, {"splt": "test"})
    with pytest.raises(EnvKwargsError, match=re.escape("'xyz'. Its arguments: dynamics, n_topics")):
        check_env_kwargs("rlagent/Recommendation-v0", {"xyz": 1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise": "abc"}, f"{CS}: noise expects a number, got 'abc' (default: 0.0)."),
        ({"noise": True}, "noise expects a number, got true"),
        ({"max_turns": 2.5}, "max_turns expects an integer, got 2.5 (default: 20)."),
        ({"patience": [1, 2, 3]}, "patience expects a list of 2 values, got [1, 2, 3]"),
        ({"dataset": 3}, "dataset expects a string, a file path or null, got 3 (default: null)."),
    ],
)
def test_a_value_of_the_wrong_type_says_what_is_expected(kwargs, message):
    with pytest.raises(EnvKwargsError, match=re.escape(message)):
        make_env(CS, kwargs)


def test_values_that_fit_pass():
    check_env_kwargs(CS, {"split": "test", "noise": np.float32(0.1), "patience": [4, 8]})
    check_env_kwargs(CS, {"max_turns": np.int64(10), "max_episode_steps": 5})
    check_env_kwargs("rlagent/Recommendation-v0", {"budget": None, "n_topics": 5})
    env = make_env(CS, {"split": "test"}, max_episode_steps=3)
    assert env.unwrapped.split == "test" and env.spec.max_episode_steps == 3


def test_an_env_taking_any_kwargs_is_not_checked(monkeypatch):
    def factory(**kwargs):
        return gymnasium.make(CS)

    monkeypatch.setitem(
        registry, "AnyKwargs-v0", gymnasium.envs.registration.EnvSpec("AnyKwargs-v0", factory)
    )
    check_env_kwargs("AnyKwargs-v0", {"whatever": "x"})


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        (
            "rlagent/CustomerServic-v0",
            "Environment `CustomerServic` doesn't exist in namespace rlagent. Did you mean: "
            "`CustomerService`?",
        ),
        (
            "CustomerService-v0",
            "Environment `CustomerService` doesn't exist. Did you mean "
            "'rlagent/CustomerService-v0'?",
        ),
        ("NoSuchThing-v0", "register it in a module and pass --env module:EnvName-v0"),
    ],
)
def test_an_unknown_id_is_one_line_with_a_suggestion(env_id, message):
    with pytest.raises(UnknownEnvError, match=re.escape(message)) as info:
        make_env(env_id)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, gymnasium.error.Error)
    with pytest.raises(UnknownEnvError, match=re.escape(message)):
        evaluate("random", env_id, episodes=1)


def test_an_unversioned_id_finds_the_latest_version():
    assert find_env_spec("rlagent/CustomerService").id == CS


MODULE = """
import gymnasium as gym

class _Env(gym.Env):
    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, word: str = "hi"):
        self.word = word

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 0.0, True, False, {}

gym.register("{env_id}", entry_point=_Env)
"""


@pytest.fixture
def module_in_cwd(tmp_path, monkeypatch):
    """A module registering ``CwdModule/Echo-v0`` in the working directory, not on sys.path."""
    name, env_id = "rlagent_cwd_module_env", "CwdModule/Echo-v0"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE).replace("{env_id}", env_id))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name, env_id
    sys.modules.pop(name, None)
    registry.pop(env_id, None)


def test_module_prefix_imports_from_the_working_directory(module_in_cwd):
    name, env_id = module_in_cwd
    path_before = list(sys.path)
    env = make_env(f"{name}:{env_id}", {"word": "yes"})
    assert env.unwrapped.word == "yes"
    assert sys.path == path_before  # the working directory was on it for that import only
    with pytest.raises(EnvKwargsError, match=re.escape("did you mean 'word'? Its arguments: word")):
        make_env(f"{name}:{env_id}", {"wrd": "yes"})


def test_a_module_found_nowhere_is_one_line(module_in_cwd, tmp_path):
    with pytest.raises(
        UnknownEnvError,
        match=re.escape(
            "Cannot import the module of env id 'no_such_module_xyz:Echo-v0': no module named "
            f"'no_such_module_xyz' in the working directory {tmp_path} or on the path. Run from "
            "the folder that holds no_such_module_xyz.py"
        ),
    ):
        make_env("no_such_module_xyz:Echo-v0")


def test_a_missing_import_inside_the_module_is_not_hidden(module_in_cwd, tmp_path):
    (tmp_path / "rlagent_cwd_broken_env.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        make_env("rlagent_cwd_broken_env:Echo-v0")
    sys.modules.pop("rlagent_cwd_broken_env", None)
