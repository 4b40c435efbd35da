"""The training loop: ``train(config, out_dir)`` behind ``rlagent train``.

A run directory holds ``config.yaml``, ``model.zip``, ``best_model.zip``, ``tensorboard/``,
``checkpoints/``, ``metrics.json``, ``learning_curve.png`` and ``report.md``. SIGINT and
SIGTERM stop training at the next step and write a checkpoint first; ``resume=True`` continues
from the newest intact checkpoint with the optimiser, timestep counter, random generators and
TensorBoard curves carried on.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlagent.training.averaging import average_policy_weights
from rlagent.training.callbacks import EnvMetricsCallback, RunCallback, StopFlag, cache_info
from rlagent.training.checkpoints import (
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint_state,
    restore_rng_state,
)
from rlagent.training.config import ConfigError, TrainConfig
from rlagent.training.report import plot_learning_curve, write_report

__all__ = ["RunDirectoryExistsError", "TrainResult", "train"]

logger = logging.getLogger(__name__)

_TB_NAME = "PPO"
#: Run-state key of AuxiliaryLoss's separate optimizer (it is not part of the saved model).
_AUXILIARY_OPTIMIZER = "auxiliary_optimizer"


class RunDirectoryExistsError(FileExistsError):
    """Raised instead of overwriting an existing run directory."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or interrupted) run produced.

    Attributes:
        out_dir: The run directory.
        timesteps: Environment steps trained.
        wall_time_s: Wall time across all sessions of the run, in seconds.
        fps: Environment steps per second of wall time.
        interrupted: True when a signal stopped the run (resume it with ``resume=True``).
        stopped_early: True when ``on_eval`` asked to stop (e.g. a pruned tuning trial).
        metrics: The content of ``metrics.json``.
    """

    out_dir: Path
    timesteps: int
    wall_time_s: float
    fps: float
    interrupted: bool
    stopped_early: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        """The final model."""
        return self.out_dir / "model.zip"


@contextmanager
def _catch_signals(flag: StopFlag) -> Iterator[None]:
    """Turn the first SIGINT/SIGTERM into a stop request; a second SIGINT interrupts hard."""

    def handler(signum: int, frame: Any) -> None:
        if flag and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signal = signum
        logger.warning("Received signal %d: saving a checkpoint and stopping.", signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _prepare_dir(out_dir: Path, *, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out_dir / "config.yaml").is_file():
            raise ConfigError(
                f"Cannot resume: {out_dir} is not a run directory (no config.yaml). "
                "Start a new run without --resume."
            )
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise RunDirectoryExistsError(
                f"Run directory {out_dir} already exists and is not empty. Use --resume to "
                "continue it, --overwrite to delete it and start over, or choose another --out."
            )
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _rollout_size(config: TrainConfig, model: Any) -> int:
    return int(model.n_steps) * int(config.n_envs)


def _evaluator(config: TrainConfig, episodes: int):
    from rlagent.evaluation import evaluate

    def run(model: Any) -> dict[str, Any]:
        result = evaluate(
            model,
            config.env_id,
            env_kwargs=config.resolved_eval_env_kwargs,
            episodes=episodes,
            seed=config.seed + 10_000,
            name="PPO",
        )
        out = result.to_dict()
        out.pop("name")
        return out

    return run


def _average_final_model(config: TrainConfig, model: Any, out_dir: Path) -> dict[str, Any]:
    """Average the policy over the last checkpoints in place; its evaluation entry."""
    used = list_checkpoints(out_dir / "checkpoints")[-(config.average_checkpoints + 1) :]
    if len(used) <= config.average_checkpoints:
        logger.warning(
            "average_checkpoints = %d, but the run has only %d checkpoint(s); averaging those.",
            config.average_checkpoints,
            len(used),
        )
    average_policy_weights(model.policy, [checkpoint.model_path for checkpoint in used])
    result = _evaluator(config, config.eval_episodes)(model)
    steps = [checkpoint.timesteps for checkpoint in used]
    return {"timesteps": int(model.num_timesteps), "averaged_checkpoints": steps, **result}


def _main_metric(config: TrainConfig) -> str | None:
    from rlagent.evaluation import make_env

    env = make_env(config.env_id, config.resolved_eval_env_kwargs)
    try:
        return getattr(env.unwrapped, "MAIN_METRIC", None)
    finally:
        env.close()


def _baselines(config: TrainConfig) -> dict[str, dict[str, Any]]:
    from rlagent.evaluation import baseline_names, evaluate, make_env

    if not config.baseline_episodes:
        return {}
    env = make_env(config.env_id, config.resolved_eval_env_kwargs)
    out = {}
    for name in baseline_names(env):
        result = evaluate(
            name, env, episodes=config.baseline_episodes, seed=config.seed + 10_000
        ).to_dict()
        result.pop("name")
        out[name] = result
    env.close()
    return out


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress_bar: bool = False,
    verbose: int = 0,
    on_eval: Callable[[dict[str, Any]], bool] | None = None,
) -> TrainResult:
    """Train a text PPO agent and write the run directory.

    Args:
        config: The run's configuration (see :func:`rlagent.training.load_config`). With
            ``resume``, the configuration saved in the run directory is used, except
            ``n_timesteps``, which may be raised to train longer.
        out_dir: The run directory.
        resume: Continue from the newest intact checkpoint in ``out_dir``.
        overwrite: Delete an existing ``out_dir`` first (never done implicitly).
        progress_bar: Show a progress bar.
        verbose: Stable-Baselines3 verbosity.
        on_eval: Called with each evaluation entry (``timesteps``, ``mean_return``, the env's
            metrics); returning False stops training early, as a pruned tuning trial does.

    Returns:
        The :class:`TrainResult`; ``interrupted`` is set when a signal stopped the run.

    Raises:
        RunDirectoryExistsError: ``out_dir`` exists, is not empty, and neither ``resume`` nor
            ``overwrite`` was given.
        ConfigError: ``resume`` on a directory that is not a run directory.
        CheckpointError: ``resume`` but no intact checkpoint exists.
    """
    from rlagent.agents import load, make_ppo
    from rlagent.pipeline import make_vec_env, pipeline_of

    out_dir = Path(out_dir)
    _prepare_dir(out_dir, resume=resume, overwrite=overwrite)
    run_state: dict[str, Any] = {"eval_history": []}
    if resume:
        saved = yaml.safe_load((out_dir / "config.yaml").read_text())
        saved["n_timesteps"] = max(int(saved["n_timesteps"]), int(config.n_timesteps))
        config = TrainConfig.from_dict(saved, str(out_dir / "config.yaml"))
        checkpoint = find_latest_checkpoint(out_dir / "checkpoints")
        state = load_checkpoint_state(checkpoint)
        run_state = state["run"]
        run_state["wall_time_before_s"] = run_state.get("wall_time_s", 0.0)
        model = load(checkpoint.model_path, device=config.device)
        # The checkpoint's own pipeline builds the observations it was trained on.
        model.set_env(
            make_vec_env(
                config.env_id,
                pipeline=pipeline_of(model),
                n_envs=config.n_envs,
                seed=config.seed + checkpoint.timesteps,
                env_kwargs=config.env_kwargs,
                reward_scale=config.reward_scale,
                reward_shaping=config.reward_shaping,
                expected_rewards=config.expected_rewards,
            )
        )
        model.tensorboard_log = str(out_dir / "tensorboard")
        restore_rng_state(state)
        logger.info("Resuming %s from %d timesteps.", out_dir, checkpoint.timesteps)
    else:
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=True))
        model = make_ppo(
            config.env_id,
            config=config,
            device=config.device,
            seed=config.seed,
            tensorboard_log=str(out_dir / "tensorboard"),
            verbose=verbose,
        )
    rollout = _rollout_size(config, model)
    target = int(math.ceil(config.n_timesteps / rollout) * rollout)
    stop = StopFlag()
    extra_state = {}
    if resume and config.auxiliary.enabled and "auxiliary" not in model.rlagent_spec:
        # A checkpoint written before models recorded their auxiliary settings.
        model.rlagent_spec["auxiliary"] = config.auxiliary.to_dict()
    auxiliary = model.auxiliary_loss  # run by model.learn after each rollout
    if auxiliary is not None:
        # Its separate optimizer is not in the saved model: checkpoint it with the run.
        auxiliary.load_optimizer_state(run_state.get(_AUXILIARY_OPTIMIZER))
        extra_state[_AUXILIARY_OPTIMIZER] = auxiliary.optimizer_state
    run_cb = RunCallback(
        out_dir=out_dir,
        run_state=run_state,
        evaluate=_evaluator(config, config.eval_episodes),
        eval_freq=config.eval_freq,
        checkpoint_freq=config.checkpoint_freq,
        keep_checkpoints=config.keep_checkpoints,
        stop_flag=stop,
        on_eval=on_eval,
        extra_state=extra_state,
    )
    callbacks = [EnvMetricsCallback(), run_cb]
    start_steps = int(model.num_timesteps)
    with _catch_signals(stop):
        if target > start_steps:
            model.learn(
                total_timesteps=target - start_steps,
                callback=callbacks,
                reset_num_timesteps=not resume,
                tb_log_name=_TB_NAME,
                progress_bar=progress_bar,
            )
        interrupted = bool(stop)
        if interrupted or run_cb.stopped_early:
            # Steps of the unfinished rollout were collected but never learned from.
            model.num_timesteps = run_cb.trained_timesteps
        if not interrupted:
            if not run_state.get("eval_history") or (
                run_state["eval_history"][-1]["timesteps"] != model.num_timesteps
            ):
                run_cb.run_evaluation()
        run_cb.checkpoint()
    wall = run_cb.elapsed()
    timesteps = int(model.num_timesteps)
    fps = (timesteps - start_steps) / max(wall - run_state.get("wall_time_before_s", 0.0), 1e-9)
    metrics: dict[str, Any] = {
        "env_id": config.env_id,
        "timesteps": timesteps,
        "target_timesteps": target,
        "wall_time_s": round(wall, 2),
        "fps": round(fps, 1),
        "interrupted": interrupted,
        "stopped_early": run_cb.stopped_early,
        "config": config.to_dict(),
        "eval_history": run_state.get("eval_history", []),
        "encoder_cache": cache_info(model),
    }
    if not interrupted:
        metrics["final"] = metrics["eval_history"][-1]
        if config.average_checkpoints:
            metrics["final"] = _average_final_model(config, model, out_dir)
        model.save(out_dir / "model.zip")
        best_ts = run_state.get("best_timesteps")
        metrics["best"] = next(
            (e for e in metrics["eval_history"] if e["timesteps"] == best_ts), None
        )
        metrics["baselines"] = _baselines(config)
        plot_learning_curve(
            metrics["eval_history"],
            metrics["baselines"],
            out_dir / "learning_curve.png",
            main_metric=_main_metric(config),
            title=f"{config.env_id}: PPO with {config.encoder} encoder ({config.encoder_mode})",
        )
        write_report(out_dir / "report.md", metrics)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    model.get_env().close()
    return TrainResult(
        out_dir=out_dir,
        timesteps=timesteps,
        wall_time_s=wall,
        fps=fps,
        interrupted=interrupted,
        stopped_early=run_cb.stopped_early,
        metrics=metrics,
    )
