"""Training runs with a warm start: recorded, logged, resumed without redoing it, on the CLI."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import toyenv  # noqa: F401  (registers ToyKeyword-v0)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import rlagent.agents.text_ppo
import rlagent.agents.warm_starting
from rlagent.agents.loading import read_policy_state
from rlagent.cli import main
from rlagent.training import TrainConfig, train
from rlagent.training.checkpoints import list_checkpoints

ENV_ID = "toyenv:ToyKeyword-v0"
ROLLOUT = 2 * 32
WARM = {"enabled": True, "episodes": 30, "epochs": 30, "learning_rate": 3e-3, "batch_size": 32}


def _config(**changes) -> TrainConfig:
    settings = dict(
        env_id=ENV_ID,
        n_timesteps=2 * ROLLOUT,
        n_envs=2,
        encoder="tiny-random",
        max_length=12,
        ppo={"n_steps": 32, "batch_size": 32, "n_epochs": 2},
        policy_kwargs={"net_arch": [32]},
        eval_freq=0,
        eval_episodes=3,
        checkpoint_freq=ROLLOUT,
        baseline_episodes=0,
        device="cpu",
        warm_start={**WARM, "bc_decay_steps": 3 * ROLLOUT},
    )
    settings.update(changes)
    return TrainConfig(**settings)


def _scalars(out: Path, tag: str) -> dict[int, float]:
    values = {}
    for run in sorted((out / "tensorboard").iterdir()):
        for event_file in sorted(run.glob("events.*")):
            acc = EventAccumulator(str(event_file))
            acc.Reload()
            if tag in acc.Tags()["scalars"]:
                values.update({e.step: e.value for e in acc.Scalars(tag)})
    return values


def _no_second_warm_start(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the warm start ran again")

    monkeypatch.setattr(rlagent.agents.warm_starting, "warm_start", refuse)
    monkeypatch.setattr(rlagent.agents.text_ppo, "warm_start", refuse)
    monkeypatch.setattr(rlagent.agents, "warm_start", refuse)


@pytest.fixture(scope="module")
def warm_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("warm") / "run"
    train(_config(), out)
    return out


def test_a_warm_started_run_records_logs_and_checkpoints_the_warm_start(warm_run):
    metrics = json.loads((warm_run / "metrics.json").read_text())
    warm = metrics["warm_start"]
    assert warm["accuracy"] >= 0.9 > 0.5 > warm["accuracy_before"]
    assert warm["val_accuracy"] >= 0.9 and warm["val_episodes"] == 30
    assert metrics["config"]["warm_start"]["enabled"] is True
    report = (warm_run / "report.md").read_text()
    assert "## Warm start" in report and "| training env, after | " in report
    # The warm-started policy is checkpointed before PPO's first step.
    assert [c.timesteps for c in list_checkpoints(warm_run / "checkpoints")] == [0, 64, 128]
    assert _scalars(warm_run, "warm_start/accuracy")
    assert _scalars(warm_run, "train/bc_coef") == pytest.approx({64: 2 / 3, 128: 1 / 3})
    assert set(_scalars(warm_run, "train/bc_loss")) == {64, 128}
    assert [p.name for p in (warm_run / "tensorboard").iterdir()] == ["PPO_1"]


def test_a_resumed_run_keeps_the_schedule_and_never_warm_starts_again(
    warm_run, tmp_path, monkeypatch
):
    out = Path(shutil.copytree(warm_run, tmp_path / "run"))
    before = json.loads((out / "metrics.json").read_text())["warm_start"]
    _no_second_warm_start(monkeypatch)
    result = train(_config(n_timesteps=4 * ROLLOUT), out, resume=True)
    assert result.timesteps == 4 * ROLLOUT
    assert result.metrics["warm_start"] == before
    coef = _scalars(out, "train/bc_coef")
    assert coef == pytest.approx({64: 2 / 3, 128: 1 / 3, 192: 0.0, 256: 0.0})
    assert set(_scalars(out, "train/bc_loss")) == {64, 128}


def test_a_run_killed_after_the_warm_start_resumes_from_the_warm_started_policy(
    warm_run, tmp_path, monkeypatch
):
    out = Path(shutil.copytree(warm_run, tmp_path / "run"))
    for checkpoint in list_checkpoints(out / "checkpoints")[1:]:
        shutil.rmtree(checkpoint.path)
    for name in ("metrics.json", "report.md", "model", "best_model"):
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    warm_weights = read_policy_state(list_checkpoints(out / "checkpoints")[0].model_path)
    _no_second_warm_start(monkeypatch)
    result = train(None, out, resume=True)
    assert result.timesteps == 2 * ROLLOUT and result.metrics["warm_start"]["accuracy"] >= 0.9
    # PPO continued from the warm-started weights (its demonstrations rebuilt for cloning).
    assert set(_scalars(out, "train/bc_loss")) == {64, 128}
    trained = read_policy_state(out / "model")
    assert any(not torch.equal(warm_weights[k], trained[k]) for k in warm_weights)


def test_tail_averaging_leaves_out_the_warm_started_checkpoint(tmp_path):
    result = train(_config(average_checkpoints=2, keep_checkpoints=3), tmp_path / "run")
    assert result.metrics["final"]["averaged_checkpoints"] == [ROLLOUT, 2 * ROLLOUT]


def test_train_warm_start_flag_end_to_end(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(
        "max_length: 12\nppo: {n_steps: 32, batch_size: 32, n_epochs: 1}\n"
        "policy_kwargs: {net_arch: [32]}\n"
        "warm_start: {episodes: 10, epochs: 5, bc_decay_steps: 64}\n"
    )
    out = tmp_path / "run"
    base = ["train", "--env", ENV_ID, "--encoder", "tiny-random", "--n-envs", "2"]
    base += ["--timesteps", str(ROLLOUT), "--device", "cpu", "--eval-episodes", "2"]
    base += ["--baseline-episodes", "0", "--config", str(tmp_path / "tiny.yaml")]
    base += ["--no-progress", "--out"]
    assert main([*base, str(out), "--warm-start", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["warm_start"]["episodes"] == 10 and metrics["warm_start"]["epochs"] == 5
    assert "enabled: true" in (out / "config.yaml").read_text()
    # Without the flag the YAML group only tunes it: a plain run has no warm start.
    plain = tmp_path / "plain"
    assert main([*base, str(plain), "--json"]) == 0
    assert "warm_start" not in json.loads(capsys.readouterr().out)
    # A run started without it cannot be resumed with it.
    assert main([*base, str(plain), "--resume", "--warm-start"]) == 2
    assert "warm_start (--warm-start) is" in capsys.readouterr().err


def test_an_unknown_expert_fails_before_the_run_directory_is_written(tmp_path, capsys):
    (tmp_path / "ws.yaml").write_text("warm_start: {expert: wizard}\n")
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--env",
            ENV_ID,
            "--encoder",
            "tiny-random",
            "--config",
            str(tmp_path / "ws.yaml"),
            "--warm-start",
            "--out",
            str(out),
        ]
    )
    assert code == 2 and not out.exists()
    assert re.search(
        r"has no expert named 'wizard' \(its baselines are oracle, random\)",
        capsys.readouterr().err,
    )
