"""A user's mistake in env ids, env kwargs, encoders or data files is one line, not a traceback;
command-line flags beat the settings of YAML files."""

from __future__ import annotations

import json
import sys
import textwrap
from types import SimpleNamespace

import pytest
import toyenv  # noqa: F401  (registers ToyKeyword-v0)
from gymnasium.envs.registration import registry

from rlagent.cli import main

CS, REC = "rlagent/CustomerService-v0", "rlagent/Recommendation-v0"


def one_line_error(capsys, command: str) -> str:
    """The single stderr line of a failed command, without its ``rlagent CMD: error:`` prefix."""
    err = capsys.readouterr().err
    prefix = f"rlagent {command}: error: "
    assert err.startswith(prefix) and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err[len(prefix) : -1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            ["splt=test"],
            f"{CS} has no keyword argument 'splt'; did you mean 'split'? Its arguments: "
            "render_mode, split, dataset,",
        ),
        (["noise=abc"], f"{CS}: noise expects a number, got 'abc' (default: 0.0)."),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "train", "tune"])
def test_env_kwargs_mistakes(tmp_path, capsys, command, kwargs, message):
    out = tmp_path / "run"
    argv = {
        "evaluate": ["evaluate", "random", "--env", CS, "--episodes", "1"],
        "train": ["train", "--env", CS, "--encoder", "tiny-random", "--out", str(out)],
        "tune": ["tune", "--env", CS, "--trials", "1", "--out", str(out)],
    }[command]
    assert main([*argv, "--env-kwargs", *kwargs]) == 2
    assert message in one_line_error(capsys, command)
    assert not out.exists()  # nothing was written


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        (
            "rlagent/CustomerServic-v0",
            "Environment `CustomerServic` doesn't exist in namespace rlagent. Did you mean: "
            "`CustomerService`?",
        ),
        ("CustomerService-v0", "Did you mean 'rlagent/CustomerService-v0'?"),
        (
            "no_such_module_xyz:Thing-v0",
            "Cannot import the module of env id 'no_such_module_xyz:Thing-v0': no module named "
            "'no_such_module_xyz'",
        ),
    ],
)
def test_unknown_env_ids(capsys, env_id, message):
    assert main(["evaluate", "random", "--env", env_id, "--episodes", "1"]) == 2
    assert message in one_line_error(capsys, "evaluate")


def test_misspelled_encoder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--env", CS, "--encoder", "tiny-randm", "--out", str(out)]) == 2
    assert one_line_error(capsys, "train").startswith(
        "Unknown encoder 'tiny-randm'; did you mean 'tiny-random'?"
    )
    assert not out.exists()
    argv = ["train", "--env", CS, "--encoder", "no-such-org/no-such-model", "--out", str(out)]
    assert main(argv) == 2
    assert "(HF_HUB_OFFLINE is set, so nothing is downloaded)" in one_line_error(capsys, "train")


ENV_MODULE = """
import gymnasium as gym
from rlagent.envs import text_space


class Always:
    def __init__(self, env):
        pass

    def reset(self, seed=None):
        pass

    def act(self, observation):
        return 1


class WordEnv(gym.Env):
    BASELINES = {"always": Always}
    observation_space = gym.spaces.Dict({"text": text_space(20)})
    action_space = gym.spaces.Discrete(2)

    def __init__(self, word: str = "hello"):
        self.word = word

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"text": self.word}, {}

    def step(self, action):
        return {"text": self.word}, float(action), True, False, {}


gym.register("CliCwd/Word-v0", entry_point=WordEnv)
"""


def test_env_module_in_the_working_directory(tmp_path, monkeypatch, capsys):
    name = "rlagent_cli_cwd_env"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(ENV_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        argv = ["evaluate", "always", "--env", f"{name}:CliCwd/Word-v0", "--episodes", "2"]
        assert main([*argv, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["mean_return"] == 1.0
        assert main([*argv, "--env-kwargs", "wrd=x"]) == 2
        assert "did you mean 'word'?" in one_line_error(capsys, "evaluate")
    finally:
        sys.modules.pop(name, None)
        registry.pop("CliCwd/Word-v0", None)


@pytest.mark.parametrize(
    ("env_id", "kwarg", "header", "message"),
    [
        (CS, "dataset", b"text,category\n", "line 3: not UTF-8 text (byte 0xe9, byte 4 of"),
        (REC, "catalog", b"title,topic\n", "line 3: not UTF-8"),
    ],
)
def test_data_files_with_invalid_utf8(tmp_path, capsys, env_id, kwarg, header, message):
    path = tmp_path / "data.csv"
    path.write_bytes(header + b"fine row,a\ncaf\xe9 row,a\n")
    argv = ["evaluate", "random", "--env", env_id, "--env-kwargs", f"{kwarg}={path}"]
    assert main([*argv, "--episodes", "1"]) == 2
    assert f"{path}, {message}" in one_line_error(capsys, "evaluate")


def test_an_excel_dataset_in_arabic_evaluates(tmp_path, capsys):
    path = tmp_path / "data.csv"
    arabic = "\u0623\u064a\u0646 \u0628\u0637\u0627\u0642\u062a\u064a"  # "where is my card"
    rows = f"text,category\r\n{arabic},card_arrival\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + rows.encode("utf-8"))
    argv = ["evaluate", "random", "--env", CS, "--env-kwargs", f"dataset={path}"]
    assert main([*argv, "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2


def test_simulations_flag_beats_the_planner_config(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    import rlagent.planning
    from rlagent.agents import AgentConfig, make_ppo, save_model

    ppo = make_ppo(CS, config=AgentConfig(), encoder="tiny-random", n_envs=1, seed=0, device="cpu")
    save_model(ppo, tmp_path / "m")
    (tmp_path / "planner.yaml").write_text("num_simulations: 5\nmax_depth: 1\n")
    built = []
    make = rlagent.planning.make_planning_agent

    def recording(*args, **kwargs):
        agent = make(*args, **kwargs)
        built.append(agent.config)
        return agent

    monkeypatch.setattr(rlagent.planning, "make_planning_agent", recording)
    argv = ["evaluate", str(tmp_path / "m"), "--episodes", "1", "--no-baselines", "--json"]
    argv += ["--planner", "mcts", "--planner-config", str(tmp_path / "planner.yaml")]
    argv += ["--belief", "env"]  # the model has no auxiliary probe
    assert main([*argv, "--simulations", "3"]) == 0
    assert main(argv) == 0
    capsys.readouterr()
    assert [(c.num_simulations, c.max_depth) for c in built] == [(3, 1), (5, 1)]


def test_make_planning_agent_simulations_beat_settings_and_config():
    import gymnasium as gym

    from rlagent.planning import MCTSConfig, make_planning_agent

    env = gym.make(CS)
    settings = {"num_simulations": 5, "max_depth": 2}
    config = MCTSConfig(num_simulations=7)

    def budget(**kwargs):
        return make_planning_agent(None, env, belief="env", **kwargs).config.num_simulations

    assert budget(simulations=3, settings=settings) == 3
    assert budget(settings=settings) == 5
    assert budget() == 100
    assert budget(config=config) == 7
    assert budget(simulations=2, config=config) == 2


def test_train_and_tune_flags_beat_the_config_file(tmp_path, monkeypatch, capsys):
    import rlagent.training
    import rlagent.training.tuning
    from rlagent.training.tuning.space import base_train_config

    config_file = tmp_path / "c.yaml"
    config_file.write_text("n_timesteps: 5000\nseed: 7\nn_envs: 2\nenv_kwargs: {noise: 0.2}\n")
    seen = []

    def fake_train(config, out, **kwargs):
        seen.append(config)
        return SimpleNamespace(metrics={}, interrupted=False, timesteps=0, out_dir=tmp_path)

    monkeypatch.setattr(rlagent.training, "train", fake_train)
    common = ["--env", CS, "--config", str(config_file), "--encoder", "tiny-random"]
    argv = ["train", *common, "--out", str(tmp_path / "r"), "--json", "--timesteps", "64"]
    assert main([*argv, "--seed", "3", "--env-kwargs", "noise=0.0"]) == 0
    config = seen[-1]
    assert (config.n_timesteps, config.seed, config.n_envs) == (64, 3, 2)
    assert config.env_kwargs["noise"] == 0.0

    monkeypatch.setattr(
        rlagent.training.tuning, "tune", lambda c: seen.append(base_train_config(c)) or {}
    )
    monkeypatch.setattr(rlagent.training.tuning, "format_tune_summary", lambda s: "")
    assert main(["tune", *common, "--trials", "1", "--timesteps", "128", "--n-envs", "1"]) == 0
    assert (seen[-1].n_timesteps, seen[-1].n_envs, seen[-1].env_kwargs["noise"]) == (128, 1, 0.2)
    capsys.readouterr()
