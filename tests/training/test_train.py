"""Training runs end to end on a tiny user-defined env with a tiny random encoder."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rlagent.training.run
from rlagent.agents import load, spec_of
from rlagent.agents.loading import read_policy_state
from rlagent.agents.saving import is_model_dir
from rlagent.cli import main
from rlagent.training import (
    AveragingError,
    CheckpointError,
    ForeignDirectoryError,
    ResumeError,
    RunDirectoryExistsError,
    TrainConfig,
    average_policy_weights,
    find_latest_checkpoint,
    is_run_directory,
    train,
)
from rlagent.training.callbacks import RunCallback
from rlagent.training.checkpoints import list_checkpoints

REPO = Path(__file__).resolve().parents[2]
ENV_ID = "toyenv:ToyKeyword-v0"
ROLLOUT = 2 * 32  # n_envs * n_steps below
TINY_YAML = (
    "max_length: 12\nppo: {n_steps: 32, batch_size: 32, n_epochs: 2}\n"
    "policy_kwargs: {net_arch: [32]}\n"
)


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
    for name in ("metrics.json", "learning_curve.png", "report.md"):
        assert (out / name).is_file(), name
    assert is_model_dir(out / "model") and is_model_dir(out / "best_model")
    assert result.model_path == out / "model"
    assert (out / "tensorboard").is_dir()
    assert find_latest_checkpoint(out / "checkpoints").timesteps == 6 * ROLLOUT
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["timesteps"] for e in metrics["eval_history"]] == [128, 256, 384]
    assert set(metrics["baselines"]) == {"random", "oracle"}
    assert metrics["baselines"]["oracle"]["success_rate"] == 1.0
    assert "success_rate" in metrics["final"]
    report = (out / "report.md").read_text()
    assert "| oracle |" in report and "learning_curve.png" in report
    assert is_run_directory(out)
    # The final evaluation is in TensorBoard too, at the final step.
    final = _scalars(out, "final/mean_return")
    assert final == [(6 * ROLLOUT, pytest.approx(metrics["final"]["mean_return"]))]
    success = _scalars(out, "final/success_rate")
    assert success == [(6 * ROLLOUT, pytest.approx(metrics["final"]["success_rate"]))]
    assert _scalars(out, "eval/mean_return")[-1][0] == 6 * ROLLOUT


def _scalars(out: Path, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` of a TensorBoard scalar over the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = []
    for event_file in sorted((out / "tensorboard").glob("PPO_*/events.*")):
        acc = EventAccumulator(str(event_file))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            found += [(e.step, e.value) for e in acc.Scalars(tag)]
    return found


def test_timesteps_are_rounded_up_to_whole_rollouts(tmp_path):
    config = tiny_config(n_timesteps=ROLLOUT + 1, eval_freq=0, pooling="cls")
    result = train(config, tmp_path / "run")
    assert result.timesteps == 2 * ROLLOUT
    assert spec_of(load(tmp_path / "run" / "model"))["pooling"] == "cls"


def test_existing_run_directory_is_never_overwritten_silently(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(RunDirectoryExistsError, match="--resume to continue it, --overwrite"):
        train(tiny_config(), out)
    assert (out / "precious.txt").read_text() == "keep me"


def test_overwrite_refuses_a_directory_rlagent_did_not_write(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ideas.md").write_text("keep me")
    (notes / "config.yaml").write_text("env_id: " + ENV_ID + "\n")  # looks like a run; is not
    message = (
        f"{notes} was not written by rlagent train (it has no .rlagent-run.json), so "
        "--overwrite deleted nothing; choose another --out, or empty it yourself."
    )
    with pytest.raises(ForeignDirectoryError, match=re.escape(message)):
        train(tiny_config(), notes, overwrite=True)
    assert sorted(p.name for p in notes.iterdir()) == ["config.yaml", "ideas.md"]
    assert (notes / "ideas.md").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_run(tmp_path):
    out = tmp_path / "run"
    config = tiny_config(n_timesteps=ROLLOUT, eval_freq=0, baseline_episodes=0)
    train(config, out)
    (out / "stale.txt").write_text("from the earlier run")
    with pytest.raises(RunDirectoryExistsError, match="already exists and is not empty"):
        train(config, out)
    train(config, out, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert is_run_directory(out) and (out / "report.md").is_file()


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
    with (newest.model_path / "model.safetensors").open("r+b") as handle:
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
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
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
    assert is_model_dir(out / "model") and (out / "report.md").is_file()
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
    model = load(out / "model")
    assert model.lr_schedule(1.0) == pytest.approx(1e-3)
    assert model.lr_schedule(0.25) == pytest.approx(2.5e-4)
    assert model.clip_range(0.5) == pytest.approx(0.1)
    # The last update of the run ran at a learning rate of 0 (the checkpoint keeps the
    # optimizer's state; the final model does not).
    last = load(find_latest_checkpoint(out / "checkpoints").model_path)
    assert last.policy.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    # Resuming to a longer run stretches the schedule to the new end.
    train(config.replace(n_timesteps=4 * ROLLOUT), out, resume=True)
    resumed = load(find_latest_checkpoint(out / "checkpoints").model_path)
    assert resumed.num_timesteps == load(out / "model").num_timesteps == 4 * ROLLOUT
    assert resumed.policy.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)


def _policy_weights(path):
    return read_policy_state(path)


def test_average_checkpoints_saves_the_mean_of_the_last_checkpoints(tmp_path):
    out = tmp_path / "run"
    result = train(tiny_config(average_checkpoints=2), out)
    used = list_checkpoints(out / "checkpoints")
    assert [c.timesteps for c in used] == [2 * ROLLOUT, 4 * ROLLOUT, 6 * ROLLOUT]
    states = [_policy_weights(c.model_path) for c in used]
    saved = _policy_weights(out / "model")
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
    model = load(out / "model")
    with pytest.raises(AveragingError, match="at least one saved model"):
        average_policy_weights(model.policy, [])
    other = tmp_path / "other"
    config = tiny_config(n_timesteps=2 * ROLLOUT, checkpoint_freq=0, baseline_episodes=0)
    train(TrainConfig(**{**config.to_dict(), "policy_kwargs": {"net_arch": [16]}}), other)
    with pytest.raises(AveragingError, match="another architecture"):
        average_policy_weights(model.policy, [out / "model", other / "model"])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished two-rollout run; tests work on copies of it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    config = tiny_config(
        n_timesteps=2 * ROLLOUT, eval_freq=0, checkpoint_freq=ROLLOUT, baseline_episodes=3
    )
    train(config, out)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def _kill(*args, **kwargs):
    raise SystemExit(-signal.SIGKILL)  # as a kill: nothing after it runs


@pytest.mark.parametrize("stage", ["final evaluation", "baselines"])
def test_a_run_killed_while_finishing_completes_with_resume(tmp_path, monkeypatch, stage):
    out = tmp_path / "run"
    config = tiny_config(
        n_timesteps=2 * ROLLOUT, eval_freq=0, checkpoint_freq=ROLLOUT, baseline_episodes=3
    )
    with monkeypatch.context() as patch:
        if stage == "final evaluation":  # eval_freq=0: the only evaluation is the final one
            patch.setattr(rlagent.training.run, "_evaluator", lambda config, episodes: _kill)
        else:
            patch.setattr(rlagent.training.run, "_baselines", _kill)
        with pytest.raises(SystemExit):
            train(config, out)
    assert find_latest_checkpoint(out / "checkpoints").timesteps == 2 * ROLLOUT
    assert not (out / "metrics.json").exists() and not (out / "report.md").exists()
    result = train(None, out, resume=True)
    assert not result.interrupted and not result.already_finished
    assert result.timesteps == 2 * ROLLOUT
    for name in ("learning_curve.png", "report.md"):
        assert (out / name).is_file(), name
    assert is_model_dir(out / "model") and is_model_dir(out / "best_model")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["timesteps"] == 2 * ROLLOUT and not metrics["interrupted"]
    assert metrics["final"]["timesteps"] == 2 * ROLLOUT
    assert set(metrics["baselines"]) == {"random", "oracle"}
    assert "| oracle |" in (out / "report.md").read_text()
    assert _scalars(out, "final/mean_return") == [
        (2 * ROLLOUT, pytest.approx(metrics["final"]["mean_return"]))
    ]


def test_resume_of_a_finished_run_says_so_or_recreates_missing_outputs(
    tmp_path, finished_run, capsys
):
    out = _copy(finished_run, tmp_path)
    before = (out / "metrics.json").read_text()
    result = train(None, out, resume=True)
    assert result.already_finished and result.timesteps == 2 * ROLLOUT
    assert result.metrics == json.loads(before)
    assert (out / "metrics.json").read_text() == before
    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"Run {out} is already finished at {2 * ROLLOUT} steps (see its report.md); nothing "
        "to do. Add --timesteps N (more steps) to train it longer.\n"
    )
    (out / "report.md").unlink()
    (out / "learning_curve.png").unlink()
    result = train(None, out, resume=True)
    assert not result.already_finished and result.timesteps == 2 * ROLLOUT
    assert (out / "report.md").is_file() and (out / "learning_curve.png").is_file()
    assert json.loads((out / "metrics.json").read_text())["final"]["timesteps"] == 2 * ROLLOUT


def _checkpoint_then_stop(original):
    def checkpoint(self):
        original(self)
        self.stop_flag.signal = signal.SIGINT  # as a Ctrl-C right after the first checkpoint

    return checkpoint


def test_the_interruption_hint_runs_as_printed_and_keeps_the_saved_budget(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    out = tmp_path / "my run"  # a space: the hint must quote it
    argv = ["train", "--env", ENV_ID, "--encoder", "tiny-random", "--timesteps", str(3 * ROLLOUT)]
    argv += ["--n-envs", "2", "--device", "cpu", "--checkpoint-freq", str(ROLLOUT)]
    argv += ["--eval-freq", "0", "--eval-episodes", "3", "--baseline-episodes", "3"]
    argv += ["--config", str(tmp_path / "tiny.yaml"), "--out", str(out), "--no-progress"]
    with monkeypatch.context() as patch:
        patch.setattr(RunCallback, "checkpoint", _checkpoint_then_stop(RunCallback.checkpoint))
        assert main(argv) == 128 + signal.SIGINT
    assert find_latest_checkpoint(out / "checkpoints").timesteps == ROLLOUT
    err = capsys.readouterr().err
    assert f"Interrupted at {ROLLOUT} steps; continue with: rlagent train --resume --out " in err
    hint = re.search(r"continue with: (.*)$", err, re.MULTILINE).group(1)
    command = shlex.split(hint)
    assert command[:2] == ["rlagent", "train"]
    assert main(command[1:]) == 0
    # The run's own budget: not TrainConfig's default n_timesteps (100,000) of a config
    # built without --timesteps.
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["timesteps"] == metrics["target_timesteps"] == 3 * ROLLOUT
    assert "| oracle |" in (out / "report.md").read_text()


def test_resume_refuses_settings_that_define_the_run(tmp_path, finished_run, capsys):
    out = _copy(finished_run, tmp_path)
    other = "rlagent/CustomerService-v0"
    argv = ["train", "--resume", "--out", str(out), "--env", other, "--encoder", "default"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"rlagent train: error: Cannot resume {out} with other settings: env_id (--env) is "
        f"'{ENV_ID}' in the run, '{other}' given; encoder (--encoder) is 'tiny-random' in the "
        "run, 'default' given. --resume keeps the settings a run started with: leave those "
        "out, or start a new run in another --out.\n"
    )
    from rlagent.training import resume_config

    with pytest.raises(ResumeError, match=re.escape("max_length is 12 in the run, 24 given.")):
        train(resume_config(out, max_length=24), out, resume=True)


def test_resume_refuses_a_budget_below_the_steps_trained(tmp_path, finished_run, capsys):
    out = _copy(finished_run, tmp_path)
    assert main(["train", "--resume", "--out", str(out), "--timesteps", str(ROLLOUT)]) == 2
    assert capsys.readouterr().err == (
        f"rlagent train: error: Cannot resume {out} with n_timesteps = {ROLLOUT}: the run has "
        f"trained {2 * ROLLOUT} steps already. Give --timesteps {2 * ROLLOUT} or more, or leave "
        f"it out to keep the run's {2 * ROLLOUT}.\n"
    )


@pytest.mark.parametrize(
    "mistake, error",
    [
        ({"encoder": "tiny-randm"}, LookupError),
        ({"encoder_layers": [-1, 3]}, ValueError),  # tiny-random has two layers
        ({"env_kwargs": {"splt": "test"}}, ValueError),  # EnvKwargsError
    ],
    ids=["encoder", "encoder_layers", "env_kwargs"],
)
def test_a_failed_start_leaves_nothing_behind(tmp_path, mistake, error):
    out = tmp_path / "runs" / "new"
    with pytest.raises(error):
        train(tiny_config(**mistake), out)
    assert not (tmp_path / "runs").exists()
    out.mkdir(parents=True)  # an empty folder that was there: emptied again, kept
    with pytest.raises(error):
        train(tiny_config(**mistake), out)
    assert out.is_dir() and not any(out.iterdir())
    # The corrected command starts afresh instead of failing with "already exists".
    result = train(tiny_config(n_timesteps=ROLLOUT, eval_freq=0, baseline_episodes=0), out)
    assert result.timesteps == ROLLOUT and is_run_directory(out)
