"""Training runs end to end on a tiny user-defined env with a tiny random encoder."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from stable_baselines3.common.save_util import load_from_zip_file

from rlagent.agents import load, spec_of
from rlagent.training import (
    AveragingError,
    CheckpointError,
    RunDirectoryExistsError,
    TrainConfig,
    average_policy_weights,
    find_latest_checkpoint,
    train,
)
from rlagent.training.checkpoints import list_checkpoints

REPO = Path(__file__).resolve().parents[2]
ENV_ID = "toyenv:ToyKeyword-v0"
ROLLOUT = 2 * 32  # n_envs * n_steps below


def tiny_config(**changes) -> TrainConfig:
    settings = dict(
        env_id=ENV_ID,
        n_timesteps=6 * ROLLOUT,
        n_envs=2,
        encoder="tiny-random",
        max_length=12,
        ppo={"n_steps": 32, "batch_size": 32, "n_epochs": 2},
        policy_kwargs={"net_arch": [32]},
        eval_freq=2 * ROLLOUT,
        eval_episodes=5,
        checkpoint_freq=2 * ROLLOUT,
        baseline_episodes=10,
        device="cpu",
    )
    settings.update(changes)
    return TrainConfig(**settings)


def test_train_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    result = train(tiny_config(), out)
    assert not result.interrupted
    assert result.timesteps == 6 * ROLLOUT
    for name in ("model.zip", "best_model.zip", "metrics.json", "learning_curve.png", "report.md"):
        assert (out / name).is_file(), name
    assert (out / "tensorboard").is_dir()
    assert find_latest_checkpoint(out / "checkpoints").timesteps == 6 * ROLLOUT
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["timesteps"] for e in metrics["eval_history"]] == [128, 256, 384]
    assert set(metrics["baselines"]) == {"random", "oracle"}
    assert metrics["baselines"]["oracle"]["success_rate"] == 1.0
    assert "success_rate" in metrics["final"]
    report = (out / "report.md").read_text()
    assert "| oracle |" in report and "learning_curve.png" in report


def test_timesteps_are_rounded_up_to_whole_rollouts(tmp_path):
    config = tiny_config(n_timesteps=ROLLOUT + 1, eval_freq=0, pooling="cls")
    result = train(config, tmp_path / "run")
    assert result.timesteps == 2 * ROLLOUT
    assert spec_of(load(tmp_path / "run" / "model.zip"))["pooling"] == "cls"


def test_existing_run_directory_is_never_overwritten_silently(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(RunDirectoryExistsError, match="--resume to continue it, --overwrite"):
        train(tiny_config(), out)
    assert (out / "precious.txt").read_text() == "keep me"


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(
        "env_id: " + ENV_ID + "\nn_timesteps: 128\nencoder: tiny-random\n"
    )
    with pytest.raises(CheckpointError, match="No usable checkpoint"):
        train(tiny_config(), out, resume=True)


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    out = tmp_path / "run"
    train(tiny_config(checkpoint_freq=ROLLOUT, eval_freq=0), out)
    newest = find_latest_checkpoint(out / "checkpoints")
    with (newest.model_path).open("r+b") as handle:
        handle.truncate(100)
    fallback = find_latest_checkpoint(out / "checkpoints")
    assert fallback.timesteps == newest.timesteps - ROLLOUT
    assert "does not match its checksum" in caplog.text


def _cli(out: Path, *extra: str, timesteps: int = 20 * ROLLOUT) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rlagent.cli",
        "train",
        "--env",
        ENV_ID,
        "--env-kwargs",
        "delay=0.004",
        "--encoder",
        "tiny-random",
        "--timesteps",
        str(timesteps),
        "--n-envs",
        "2",
        "--device",
        "cpu",
        "--checkpoint-freq",
        str(ROLLOUT),
        "--eval-freq",
        str(4 * ROLLOUT),
        "--eval-episodes",
        "3",
        "--baseline-episodes",
        "5",
        "--config",
        str(out.parent / "tiny.yaml"),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), env.get("PYTHONPATH", "")])
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _tensorboard_steps(out: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted((out / "tensorboard").iterdir())
    assert [r.name for r in runs] == ["PPO_1"], "resume must continue the same TensorBoard run"
    steps: set[int] = set()
    for event_file in sorted(runs[0].glob("events.*")):
        acc = EventAccumulator(str(event_file))
        acc.Reload()
        if "time/fps" in acc.Tags()["scalars"]:
            steps |= {e.step for e in acc.Scalars("time/fps")}
    return sorted(steps)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_run_resumes_to_the_requested_timesteps(tmp_path, sig):
    (tmp_path / "tiny.yaml").write_text(
        "max_length: 12\nppo: {n_steps: 32, batch_size: 32, n_epochs: 2}\n"
        "policy_kwargs: {net_arch: [32]}\n"
    )
    out = tmp_path / "run"
    target = 20 * ROLLOUT
    proc = subprocess.Popen(_cli(out), cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "checkpoints").glob("step_*"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()}"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    before = find_latest_checkpoint(out / "checkpoints").timesteps
    assert 0 < before < target
    if sig == signal.SIGINT:
        assert proc.returncode == 128 + signal.SIGINT
        assert "saving a checkpoint" in proc.stderr.read()
    else:
        assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run(
        _cli(out, "--resume", "--json"), cwd=REPO, env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads(resumed.stdout)
    assert metrics["timesteps"] == target
    assert (out / "model.zip").is_file() and (out / "report.md").is_file()
    steps = _tensorboard_steps(out)
    assert steps[-1] == target
    # One TensorBoard point per rollout, none missing across the interruption.
    assert set(range(ROLLOUT, target + 1, ROLLOUT)) <= set(steps)


def test_linear_schedules_decay_to_zero_over_the_run_and_after_a_resume(tmp_path):
    out = tmp_path / "run"
    ppo = {"n_steps": 32, "batch_size": 32, "n_epochs": 2}
    config = tiny_config(
        n_timesteps=2 * ROLLOUT,
        eval_freq=0,
        baseline_episodes=0,
        ppo={**ppo, "learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
    )
    train(config, out)
    model = load(out / "model.zip")
    assert model.lr_schedule(1.0) == pytest.approx(1e-3)
    assert model.lr_schedule(0.25) == pytest.approx(2.5e-4)
    assert model.clip_range(0.5) == pytest.approx(0.1)
    # The last update of the run ran at a learning rate of 0.
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    # Resuming to a longer run stretches the schedule to the new end.
    train(config.replace(n_timesteps=4 * ROLLOUT), out, resume=True)
    resumed = load(out / "model.zip")
    assert resumed.num_timesteps == 4 * ROLLOUT
    assert resumed.policy.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)


def _policy_weights(path):
    return load_from_zip_file(path, device="cpu", load_data=False)[1]["policy"]


def test_average_checkpoints_saves_the_mean_of_the_last_checkpoints(tmp_path):
    out = tmp_path / "run"
    result = train(tiny_config(average_checkpoints=2), out)
    used = list_checkpoints(out / "checkpoints")
    assert [c.timesteps for c in used] == [2 * ROLLOUT, 4 * ROLLOUT, 6 * ROLLOUT]
    states = [_policy_weights(c.model_path) for c in used]
    saved = _policy_weights(out / "model.zip")
    moved = 0
    for key, value in saved.items():
        expected = (states[0][key] + states[1][key] + states[2][key]) / 3
        if torch.is_floating_point(value) and not torch.equal(states[0][key], states[2][key]):
            torch.testing.assert_close(value, expected)
            moved += 1
        else:  # unchanged by training (the frozen encoder): kept exactly
            assert torch.equal(value, states[2][key]), key
    assert moved > 0
    final = result.metrics["final"]
    assert final["averaged_checkpoints"] == [2 * ROLLOUT, 4 * ROLLOUT, 6 * ROLLOUT]
    assert final["timesteps"] == 6 * ROLLOUT and "mean_return" in final
    # The checkpoints keep the last trained weights, for --resume.
    assert not all(torch.equal(saved[k], states[2][k]) for k in saved)
    assert "PPO (final)" in (out / "report.md").read_text()


def test_average_policy_weights_rejects_nothing_and_other_architectures(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(n_timesteps=2 * ROLLOUT, checkpoint_freq=0, baseline_episodes=0), out)
    model = load(out / "model.zip")
    with pytest.raises(AveragingError, match="at least one saved model"):
        average_policy_weights(model.policy, [])
    other = tmp_path / "other"
    config = tiny_config(n_timesteps=2 * ROLLOUT, checkpoint_freq=0, baseline_episodes=0)
    train(TrainConfig(**{**config.to_dict(), "policy_kwargs": {"net_arch": [16]}}), other)
    with pytest.raises(AveragingError, match="another architecture"):
        average_policy_weights(model.policy, [out / "model.zip", other / "model.zip"])
