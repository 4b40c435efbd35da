"""Hyperparameter tuning: settings checks, the search space, pruning, shared storage, Ray."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install rlagent[tune])")

from rlagent.training import TrainConfig, TrainResult  # noqa: E402
from rlagent.training.tuning import (  # noqa: E402
    SearchSpace,
    TuneConfig,
    TuneConfigError,
    TuneError,
    base_train_config,
    format_tune_summary,
    params_to_overrides,
    parse_storage,
    plot_trials,
    progress_step,
    sample_params,
    tune,
)

REPO = Path(__file__).resolve().parents[2]
ENV_ID = "toyenv:ToyKeyword-v0"
TINY_SPACE = SearchSpace(
    n_steps=(16, 32), n_minibatches=(1, 2), n_epochs=(1, 2), net_arch=("small",), max_length=(12,)
)


def tiny_tune(tmp_path, **changes) -> TuneConfig:
    settings = dict(
        env_id=ENV_ID,
        n_trials=2,
        timesteps=64,
        encoder="tiny-random",
        eval_episodes=2,
        n_envs=2,
        device="cpu",
        out_dir=str(tmp_path / "tune"),
        search_space=TINY_SPACE,
    )
    settings.update(changes)
    return TuneConfig(**settings)


# ------------------------------------------------------------------------- settings and errors


def test_unknown_backend_is_rejected():
    with pytest.raises(
        TuneConfigError,
        match=re.escape("backend = 'spark'; expected one of 'optuna', 'ray' (--backend optuna)."),
    ):
        TuneConfig(env_id=ENV_ID, backend="spark")


@pytest.mark.parametrize("n_trials", [0, -3])
def test_fewer_than_one_trial_is_rejected(n_trials):
    with pytest.raises(
        TuneConfigError,
        match=re.escape(f"n_trials = {n_trials}; expected at least 1 trial (e.g. --trials 20)."),
    ):
        TuneConfig(env_id=ENV_ID, n_trials=n_trials)


def test_unknown_sampler_and_pruner_are_rejected():
    with pytest.raises(TuneConfigError, match=re.escape("sampler = 'grid'; expected one of")):
        TuneConfig(env_id=ENV_ID, sampler="grid")
    with pytest.raises(TuneConfigError, match=re.escape("pruner = 'hyperband'; expected one of")):
        TuneConfig(env_id=ENV_ID, pruner="hyperband")


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("", "storage = ''; expected a database URL such as sqlite:///tune.db"),
        ("redis://localhost:6379", "'redis' is not a database Optuna can use"),
        (
            "study.db",
            "storage = 'study.db' looks like an SQLite file; write it as a URL, "
            "sqlite:///study.db, or name a journal file such as study.log.",
        ),
        ("sqlite:////no/such/folder/x.db", "the folder /no/such/folder does not exist"),
        ("/no/such/folder/tune.log", "the folder /no/such/folder does not exist"),
    ],
)
def test_bad_storage_is_rejected(storage, message):
    with pytest.raises(TuneConfigError, match=re.escape(message)):
        TuneConfig(env_id=ENV_ID, storage=storage)


def test_a_folder_is_not_a_journal_file(tmp_path):
    with pytest.raises(TuneConfigError, match=re.escape("is a folder; expected a journal file")):
        TuneConfig(env_id=ENV_ID, storage=str(tmp_path))


def test_storage_kinds(tmp_path):
    assert parse_storage(f"sqlite:///{tmp_path}/t.db") == ("url", f"sqlite:///{tmp_path}/t.db")
    assert parse_storage("postgresql://u:p@host/db") == ("url", "postgresql://u:p@host/db")
    assert parse_storage(str(tmp_path / "t.log")) == ("journal", str(tmp_path / "t.log"))


def test_search_space_checks():
    with pytest.raises(TuneConfigError, match=re.escape("SearchSpace.learning_rate = (0.1, 0.01)")):
        SearchSpace(learning_rate=(0.1, 0.01))
    with pytest.raises(TuneConfigError, match=re.escape("unknown size(s) ['huge']")):
        SearchSpace(net_arch=("huge",))
    with pytest.raises(TuneConfigError, match=re.escape("n_steps 24 is not a positive multiple")):
        SearchSpace(n_steps=(24,), n_minibatches=(16,))


def test_cli_reports_bad_input_in_one_line(capsys):
    from rlagent.cli import main

    status = main(["tune", "--env", "rlagent/CustomerService-v0", "--trials", "0"])
    assert status == 2
    err = capsys.readouterr().err
    assert "rlagent tune: error: n_trials = 0; expected at least 1 trial" in err


def test_trials_are_scored_on_the_validation_split(caplog):
    # The bundled customer-service config evaluates on split=val; tuning selects on it too.
    base = base_train_config(TuneConfig(env_id="rlagent/CustomerService-v0", timesteps=4000))
    assert base.resolved_eval_env_kwargs["split"] == "val"
    assert base.env_kwargs["split"] == "train"
    assert (base.eval_freq, base.checkpoint_freq, base.baseline_episodes) == (1000, 0, 0)
    assert base.average_checkpoints == 0  # the bundled config averages; a trial has no checkpoints
    assert "split='test'" not in caplog.text
    noisy = TuneConfig(env_id="rlagent/CustomerService-v0", eval_env_kwargs={"noise": 0.1})
    assert base_train_config(noisy).resolved_eval_env_kwargs == {"split": "val", "noise": 0.1}
    chosen = TuneConfig(env_id="rlagent/CustomerService-v0", eval_env_kwargs={"split": "test"})
    with caplog.at_level("WARNING", logger="rlagent.training.tuning"):
        assert base_train_config(chosen).resolved_eval_env_kwargs["split"] == "test"
    assert "Trials are scored on split='test'" in caplog.text


def test_dataset_trials_are_scored_on_the_held_out_part():
    kwargs = {"dataset": "train.csv", "split": "train"}
    config = TuneConfig(env_id="rlagent/CustomerService-v0", env_kwargs=kwargs)
    base = base_train_config(config)
    assert base.resolved_eval_env_kwargs == {"dataset": "train.csv", "split": "val"}


def test_missing_optuna_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=re.escape("pip install rlagent[tune]")):
        tune(tiny_tune(tmp_path))


def test_missing_ray_names_the_extra(tmp_path, monkeypatch, fake_train):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=re.escape("pip install rlagent[distributed]")):
        tune(tiny_tune(tmp_path, backend="ray"))
    assert fake_train.calls == []


# ------------------------------------------------------------------------------ search space


def test_sampled_settings_are_valid_training_settings():
    base = TrainConfig(env_id=ENV_ID, n_envs=3, n_timesteps=1000, policy_kwargs={"x": 1})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = sample_params(trial, SearchSpace(), n_envs=3, budget=1000)
        # Rollouts longer than the budget are never proposed (64 * 3 and 128 * 3 fit, 256 * 3 not).
        assert params["n_steps"] in (64, 128, 256)
        over = params_to_overrides(params, base)
        ppo = over["ppo"]
        assert (ppo["n_steps"] * 3) % ppo["batch_size"] == 0
        assert ppo["batch_size"] == ppo["n_steps"] * 3 // params["n_minibatches"]
        assert over["policy_kwargs"]["x"] == 1
        assert over["policy_kwargs"]["features_extractor_kwargs"]["pooling"] in ("mean", "cls")
        assert set(over["policy_kwargs"]["net_arch"]) == {"pi", "vf"}
        assert over["max_length"] in (32, 48, 64)
        TrainConfig(**{**base.to_dict(), **over})  # accepted by the trainer
        study.tell(trial, 0.0)


@given(
    eval_freq=st.integers(1, 5000),
    first=st.integers(1, 10_000),
    gaps=st.lists(st.integers(0, 20_000), max_size=10),
)
def test_progress_steps_increase_between_evaluations(eval_freq, first, gaps):
    # The trainer evaluates once at least eval_freq steps have passed since the last time.
    timesteps = [max(first, eval_freq)]
    for gap in gaps:
        timesteps.append(timesteps[-1] + eval_freq + gap)
    steps = [progress_step(t, eval_freq) for t in timesteps]
    assert steps[0] >= 1
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False))
    assert all(
        abs(s * eval_freq - t) <= eval_freq / 2 for s, t in zip(steps, timesteps, strict=True)
    )


def test_budget_smaller_than_every_rollout_keeps_the_smallest():
    trial = optuna.create_study().ask()
    params = sample_params(trial, SearchSpace(n_steps=(64, 128)), n_envs=8, budget=100)
    assert params["n_steps"] == 64


def test_empty_choices_keep_the_run_settings():
    space = SearchSpace(
        learning_rate=None,
        n_steps=(),
        n_minibatches=(),
        n_epochs=(),
        gamma=(),
        gae_lambda=(),
        ent_coef=None,
        clip_range=(),
        net_arch=(),
        max_length=(),
        pooling=(),
    )
    params = sample_params(optuna.create_study().ask(), space, n_envs=4, budget=100)
    assert params == {}


# ------------------------------------------------------------- search logic with a fake trainer


class FakeTrainer:
    """Stands in for ``train``: trial ``n`` scores ``10 - n`` at each of 4 evaluations."""

    def __init__(self, fail: bool = False, interrupt: bool = False) -> None:
        self.fail = fail
        self.interrupt = interrupt
        self.calls = []

    def __call__(self, config, out_dir, *, on_eval=None, **kwargs):
        number = int(Path(out_dir).name.split("_")[1])
        self.calls.append((number, config))
        if self.fail:
            raise ValueError("Expected parameter logits to satisfy the constraint (nan)")
        Path(out_dir).mkdir(parents=True)
        value, steps, stopped = 10.0 - number, 0, False
        for steps in (16, 32, 48, 64):
            if on_eval({"timesteps": steps, "mean_return": value}) is False:
                stopped = True
                break
        return TrainResult(
            out_dir=Path(out_dir),
            timesteps=steps,
            wall_time_s=1.0,
            fps=64.0,
            interrupted=self.interrupt,
            stopped_early=stopped,
            metrics={"final": {"timesteps": steps, "mean_return": value}},
        )


@pytest.fixture
def fake_train(monkeypatch):
    fake = FakeTrainer()
    monkeypatch.setattr("rlagent.training.run.train", fake)
    return fake


def test_median_pruning_stops_worse_trials(tmp_path, fake_train):
    summary = tune(tiny_tune(tmp_path, n_trials=3, n_startup_trials=1, pruner="median"))
    states = [t["state"] for t in summary["trials"]]
    assert states == ["COMPLETE", "PRUNED", "PRUNED"]
    # Pruning starts after the first third of the evaluations (at the second of four).
    assert summary["trials"][1]["intermediate_values"] == [9.0, 9.0]
    assert summary["trials"][0]["intermediate_steps"] == [1, 2, 3, 4]
    assert summary["best_trial"]["number"] == 0 and summary["best_trial"]["value"] == 10.0
    assert (summary["n_complete"], summary["n_pruned"], summary["n_failed"]) == (1, 2, 0)
    # Every trial trains with the same seed and eval spacing, differing by its sampled settings.
    configs = [config for _, config in fake_train.calls]
    assert {c.seed for c in configs} == {0} and {c.eval_freq for c in configs} == {16}
    assert {c.checkpoint_freq for c in configs} == {0}


def test_cli_prints_the_summary_as_json(tmp_path, fake_train, capsys):
    from rlagent.cli import main

    out = tmp_path / "cli"
    argv = ["tune", "--env", ENV_ID, "--trials", "2", "--timesteps", "64", "--pruner", "none"]
    assert main([*argv, "--encoder", "tiny-random", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_trials"] == 2 and summary["files"]["plot"] == str(out / "trials.png")
    assert {c.encoder for _, c in fake_train.calls} == {"tiny-random"}


def test_no_pruner_completes_every_trial(tmp_path, fake_train):
    summary = tune(tiny_tune(tmp_path, n_trials=3, n_startup_trials=0, pruner="none"))
    assert [t["state"] for t in summary["trials"]] == ["COMPLETE"] * 3


def test_results_files(tmp_path, fake_train):
    summary = tune(tiny_tune(tmp_path, sampler="random", encoder_layers=[-1]))
    files = summary["files"]
    for key in ("summary_json", "summary_md", "plot", "config"):
        assert Path(files[key]).is_file(), key
    assert json.loads(Path(files["summary_json"]).read_text())["best_trial"]["number"] == 0
    markdown = Path(files["summary_md"]).read_text()
    assert "## Best trial: 0 (mean return 10)" in markdown and "trials.png" in markdown
    text = format_tune_summary(summary)
    assert "Best trial: 0 with mean return 10" in text
    assert f"--config {files['config']}" in text
    # best_config.yaml is a valid `rlagent train --config` file.
    from rlagent.training import load_config

    config = load_config(ENV_ID, config_file=files["config"])
    assert config.ppo["n_steps"] == summary["best_trial"]["params"]["n_steps"]
    # ... with the encoder layers the trials pooled.
    assert list(config.encoder_layers) == [-1]
    assert {tuple(c.encoder_layers) for _, c in fake_train.calls} == {(-1,)}


def test_every_trial_failing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr("rlagent.training.run.train", FakeTrainer(fail=True))
    with pytest.raises(TuneError, match=re.escape("All 2 trials of this run failed; the first")):
        tune(tiny_tune(tmp_path))


def test_an_interrupted_trial_stops_the_search_and_keeps_the_summary(tmp_path, monkeypatch):
    monkeypatch.setattr("rlagent.training.run.train", FakeTrainer(interrupt=True))
    summary = tune(tiny_tune(tmp_path, n_trials=3, storage=str(tmp_path / "tune.log")))
    assert summary["interrupted"] and summary["n_trials_this_run"] == 1
    assert summary["trials"][0]["error"] == "interrupted"
    assert "run the same command again to continue the study" in format_tune_summary(summary)


def test_trials_of_another_study_are_not_overwritten(tmp_path, fake_train):
    tune(tiny_tune(tmp_path))
    with pytest.raises(TuneConfigError, match=re.escape("already holds trial runs of another")):
        tune(tiny_tune(tmp_path))


def test_journal_storage_continues_the_study(tmp_path, fake_train):
    config = tiny_tune(tmp_path, storage=str(tmp_path / "tune.log"), pruner="none")
    tune(config)
    summary = tune(config)
    assert summary["n_trials"] == 4 and summary["n_trials_this_run"] == 2
    params = [json.dumps(t["params"], sort_keys=True) for t in summary["trials"]]
    assert len(set(params)) == 4, "the second run repeated the first run's proposals"


def test_joining_a_study_with_another_search_space_is_an_error(tmp_path, fake_train):
    storage = str(tmp_path / "tune.log")
    tune(tiny_tune(tmp_path, storage=storage, pruner="none"))
    # A budget of 40 steps leaves only n_steps=16 (32 * 2 envs > 40): the choices differ.
    with pytest.raises(
        TuneConfigError,
        match=re.escape("The search space does not match study 'ppo-ToyKeyword-v0'"),
    ):
        tune(tiny_tune(tmp_path, storage=storage, pruner="none", timesteps=40))


def test_unknown_env_fails_before_any_trial(tmp_path, fake_train):
    import gymnasium

    with pytest.raises(gymnasium.error.Error):
        tune(tiny_tune(tmp_path, env_id="rlagent/NoSuchEnv-v0"))
    assert fake_train.calls == []


def test_plot_reads_a_study(tmp_path):
    trials = [
        {"number": 0, "state": "COMPLETE", "value": 1.0, "intermediate_values": [0.5, 1.0]},
        {"number": 1, "state": "PRUNED", "value": None, "intermediate_values": [0.1]},
        {"number": 2, "state": "FAIL", "value": None, "intermediate_values": []},
        {"number": 3, "state": "COMPLETE", "value": 2.0, "intermediate_values": [1.5, 2.0]},
    ]
    path = plot_trials(trials, tmp_path / "p.png", title="t", eval_freq=100)
    assert path.stat().st_size > 10_000


# ----------------------------------------------------------------- real training, processes


def _agents_ready() -> bool:
    try:
        import rlagent.agents  # noqa: F401
    except ImportError:
        return False
    return True


needs_agents = pytest.mark.skipif(not _agents_ready(), reason="rlagent.agents does not import")

_WORKER = textwrap.dedent(
    """
    import json, sys
    from rlagent.training.tuning import SearchSpace, TuneConfig, tune
    storage, out = sys.argv[1], sys.argv[2]
    space = SearchSpace(n_steps=(16, 32), n_minibatches=(1, 2), n_epochs=(1,),
                        net_arch=("small",), max_length=(12,))
    summary = tune(TuneConfig(env_id="toyenv:ToyKeyword-v0", n_trials=2, timesteps=32,
                              encoder="tiny-random", eval_episodes=2, n_envs=1, device="cpu",
                              storage=storage, study_name="shared", out_dir=out,
                              pruner="none", search_space=space))
    print(json.dumps({"n_trials_this_run": summary["n_trials_this_run"]}))
    """
)


@needs_agents
def test_two_processes_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    out = tmp_path / "tune"
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, storage, str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr[-4000:]
        assert json.loads(stdout.strip().splitlines()[-1]) == {"n_trials_this_run": 2}
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) > 1
    for t in trials:
        assert (out / "trials" / f"trial_{t.number}" / "model" / "manifest.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["study_name"] == "shared" and summary["n_trials"] >= 3


@needs_agents
def test_ray_backend_completes_two_trials(tmp_path):
    ray = pytest.importorskip(
        "ray", reason="ray is not installed (pip install rlagent[distributed])"
    )
    pytest.importorskip("ray.tune", reason="ray[tune] is not installed")
    pythonpath = os.pathsep.join([str(REPO), str(REPO / "tests")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1"}},
    )
    try:
        summary = tune(
            tiny_tune(
                tmp_path, backend="ray", timesteps=32, n_envs=1, eval_episodes=2, pruner="none"
            )
        )
    finally:
        ray.shutdown()
    assert summary["backend"] == "ray"
    assert summary["n_trials"] == 2 and summary["n_complete"] == 2
    assert summary["best_trial"] is not None
    assert Path(summary["best_trial"]["run_dir"], "model", "manifest.json").is_file()
    assert Path(summary["files"]["plot"]).is_file()
