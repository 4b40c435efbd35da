"""The training loop: ``train(config, out_dir)`` behind ``rlagent train``.

A run directory holds ``.rlagent-run.json`` (the marker of a directory ``train`` wrote),
``config.yaml``, ``model/`` and ``best_model/`` (model directories in the safe format, see
:func:`rlagent.agents.save_model`), ``tensorboard/``, ``checkpoints/``, ``metrics.json``,
``learning_curve.png`` and ``report.md``. SIGINT and SIGTERM stop the run at
the next step (training writes a checkpoint first); ``resume=True`` continues from the newest
intact checkpoint with the optimiser, timestep counter, random generators and TensorBoard
curves carried on, and finishes a run stopped or killed at any moment, the final evaluation and
baselines included. A run that fails before its first checkpoint leaves nothing behind.
Nothing a run writes is a pickle; a run directory from an earlier rlagent (``model.zip``,
``state.pkl`` checkpoints) resumes only with ``trust=True``.
"""

from __future__ import annotations

import json
import logging
import math
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlagent.agents.saving import is_model_dir, save_model
from rlagent.agents.text_ppo import sb3_logger
from rlagent.training.averaging import average_policy_weights
from rlagent.training.callbacks import EnvMetricsCallback, RunCallback, StopFlag, cache_info
from rlagent.training.checkpoints import (
    Checkpoint,
    check_checkpoint_trust,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint_state,
    restore_rng_state,
)
from rlagent.training.config import ConfigError, TrainConfig
from rlagent.training.report import plot_learning_curve, write_report
from rlagent.training.rundir import (
    ResumeError,
    RunDirectoryExistsError,
    check_resume_settings,
    discard_failed_start,
    is_run_directory,
    prepare_new_run,
    saved_config,
    write_config,
    write_marker,
)

__all__ = ["RunDirectoryExistsError", "TrainResult", "train"]

logger = logging.getLogger(__name__)

_TB_NAME = "PPO"
#: Run-state key of AuxiliaryLoss's separate optimizer (it is not part of the saved model).
_AUXILIARY_OPTIMIZER = "auxiliary_optimizer"

#: The final model, a model directory.
_MODEL = "model"
#: Files of a finished run besides metrics.json and the final model.
_OUTPUTS = ("report.md", "learning_curve.png")
#: Entries of an evaluation that are not logged under ``final/``.
_NOT_LOGGED = ("timesteps", "wall_time_s", "episodes")


class _Stopped(Exception):
    """A signal asked the run to stop while it was finishing."""


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
        already_finished: True when ``resume=True`` found the run finished, with all its
            outputs, and nothing to add (its ``metrics.json`` is returned as it was).
    """

    out_dir: Path
    timesteps: int
    wall_time_s: float
    fps: float
    interrupted: bool
    stopped_early: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    already_finished: bool = False

    @property
    def model_path(self) -> Path:
        """The final model, a model directory (load it with :func:`rlagent.load`)."""
        return self.out_dir / _MODEL


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
    trained = [c for c in list_checkpoints(out_dir / "checkpoints") if c.timesteps > 0]
    used = trained[-(config.average_checkpoints + 1) :]  # not a warm start's step-0 checkpoint
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
    config: TrainConfig | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress_bar: bool = False,
    verbose: int = 0,
    on_eval: Callable[[dict[str, Any]], bool] | None = None,
    trust: bool = False,
) -> TrainResult:
    """Train a text PPO agent and write the run directory.

    Args:
        config: The run's configuration (see :func:`rlagent.training.load_config`). With
            ``resume``, ``None`` continues with the settings saved in the run directory
            (:func:`rlagent.training.resume_config` builds one with some of them changed);
            a given configuration may differ from the saved one only in
            :data:`rlagent.training.RESUMABLE_SETTINGS`: a larger ``n_timesteps`` trains
            longer, a smaller one (not below the steps already trained) ends sooner.
        out_dir: The run directory. A new run marks it with ``.rlagent-run.json``.
        resume: Continue from the newest intact checkpoint in ``out_dir``, or finish a run
            whose training is complete (final evaluation, averaging, ``model/``, baselines,
            plot, report, ``metrics.json``). A run that is finished, with all its outputs, is
            left as it is (``already_finished`` is set in the result).
        overwrite: Delete an existing run directory first (never done implicitly, and only
            to a directory holding the marker a run leaves; any other is refused).
        progress_bar: Show a progress bar.
        verbose: Stable-Baselines3 verbosity.
        on_eval: Called with each evaluation entry (``timesteps``, ``mean_return``, the env's
            metrics); returning False stops training early, as a pruned tuning trial does.
        trust: With ``resume``, allow continuing from a checkpoint written by an earlier
            rlagent, whose ``model.zip`` and ``state.pkl`` are pickles: loading them runs code
            stored in them, so pass True only for a run you wrote or otherwise trust.
            Checkpoints in the current format hold no pickle and need no trust.

    Returns:
        The :class:`TrainResult`; ``interrupted`` is set when a signal stopped the run.

    Raises:
        RunDirectoryExistsError: ``out_dir`` exists, is not empty, and neither ``resume`` nor
            ``overwrite`` was given.
        ForeignDirectoryError: ``overwrite`` on a non-empty directory that ``rlagent train``
            did not write; nothing is deleted.
        ConfigError: ``resume`` on a directory that is not a run directory, or no
            ``config`` for a new run.
        ResumeError: ``resume`` with a setting that contradicts the saved one, or a budget
            below the steps already trained.
        CheckpointError: ``resume`` but no intact checkpoint exists.
        UntrustedCheckpointError: ``resume`` from an older, pickled checkpoint without
            ``trust``; nothing in it is loaded.

    A new run that fails (or is interrupted hard) before its first checkpoint removes the
    run directory it created, or the files it wrote into an empty one, and re-raises.
    """
    out_dir = Path(out_dir)
    options = dict(progress_bar=progress_bar, verbose=verbose, on_eval=on_eval)
    if resume:
        saved = saved_config(out_dir)
        checkpoint = find_latest_checkpoint(out_dir / "checkpoints")
        check_checkpoint_trust(checkpoint, trust=trust)
        config = saved if config is None else check_resume_settings(saved, config, out_dir)
        if not is_run_directory(out_dir):  # a run from before the marker existed
            write_marker(out_dir)
        return _run(config, out_dir, checkpoint, saved=saved, trust=trust, **options)
    if config is None:
        raise ConfigError(
            "train() needs a TrainConfig to start a new run; config=None works only with "
            "resume=True, which reads the run's saved settings."
        )
    created = prepare_new_run(out_dir, overwrite=overwrite)
    try:
        return _run(config, out_dir, None, saved=config, **options)
    except BaseException:
        discard_failed_start(out_dir, created)
        raise


def _run(
    config: TrainConfig,
    out_dir: Path,
    checkpoint: Checkpoint | None,
    *,
    saved: TrainConfig,
    trust: bool = False,
    progress_bar: bool,
    verbose: int,
    on_eval: Callable[[dict[str, Any]], bool] | None,
) -> TrainResult:
    """Build or load the model, train it to the target, then finish the run."""
    from rlagent.agents import load_initial_weights, make_ppo

    resume = checkpoint is not None
    run_state: dict[str, Any] = {"eval_history": []}
    if resume:
        state = load_checkpoint_state(checkpoint, trust=trust)
        run_state = state["run"]
        run_state["wall_time_before_s"] = run_state.get("wall_time_s", 0.0)
        model = _load_checkpoint_model(config, checkpoint)
        model.tensorboard_log = str(out_dir / "tensorboard")
        restore_rng_state(state)
        logger.info("Resuming %s from %d timesteps.", out_dir, checkpoint.timesteps)
    else:
        write_config(out_dir, config)
        model = make_ppo(
            config.env_id,
            config=config,
            device=config.device,
            seed=config.seed,
            tensorboard_log=str(out_dir / "tensorboard"),
            verbose=verbose,
        )
        if config.init_model is not None:
            try:
                load_initial_weights(model, config.init_model)
            except BaseException:
                model.get_env().close()
                raise
    rollout = _rollout_size(config, model)
    target = int(math.ceil(config.n_timesteps / rollout) * rollout)
    start_steps = int(model.num_timesteps)
    if resume:
        if target < start_steps:
            model.get_env().close()
            raise ResumeError(
                f"Cannot resume {out_dir} with n_timesteps = {config.n_timesteps}: the run has "
                f"trained {start_steps} steps already. Give --timesteps {start_steps} or more, "
                f"or leave it out to keep the run's {saved.n_timesteps}."
            )
        if config != saved:
            write_config(out_dir, config)  # a later --resume keeps the changed settings
        finished = _finished_metrics(out_dir, start_steps, target)
        if finished is not None:
            model.get_env().close()
            logger.info("%s is already finished at %d steps.", out_dir, start_steps)
            return TrainResult(
                out_dir=out_dir,
                timesteps=start_steps,
                wall_time_s=float(finished.get("wall_time_s", 0.0)),
                fps=float(finished.get("fps", 0.0)),
                interrupted=False,
                stopped_early=bool(finished.get("stopped_early")),
                metrics=finished,
                already_finished=True,
            )
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
    with _catch_signals(stop):
        if not resume and config.warm_start.enabled:
            _warm_start(config, model, run_cb, verbose)
        if target > start_steps:
            model.learn(
                total_timesteps=target - start_steps,
                callback=callbacks,
                reset_num_timesteps=not resume,
                tb_log_name=_TB_NAME,
                progress_bar=progress_bar,
            )
        else:  # trained already: only the finishing steps are left
            model.set_logger(sb3_logger(verbose, model.tensorboard_log, _TB_NAME, False))
            run_cb.init_callback(model)
        if bool(stop) or run_cb.stopped_early:
            # Steps of the unfinished rollout were collected but never learned from.
            model.num_timesteps = run_cb.trained_timesteps
        if not resume or int(model.num_timesteps) != checkpoint.timesteps:
            run_cb.checkpoint()
        metrics = _metrics(config, model, run_cb, target)
        try:
            _finish(config, model, run_cb, stop, metrics, out_dir)
        except _Stopped:
            metrics = _metrics(config, model, run_cb, target, interrupted=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    model.logger.close()
    model.get_env().close()
    return TrainResult(
        out_dir=out_dir,
        timesteps=metrics["timesteps"],
        wall_time_s=run_cb.elapsed(),
        fps=metrics["fps"],
        interrupted=metrics["interrupted"],
        stopped_early=run_cb.stopped_early,
        metrics=metrics,
    )


def _warm_start(config: TrainConfig, model: Any, run_cb: RunCallback, verbose: int) -> None:
    """Warm-start a new run's model, then checkpoint it, so a resumed run never redoes it.

    The warm start's curves go to the run's TensorBoard folder (the logger PPO then keeps);
    its agreement with the expert is measured on the training env's demonstrations and on
    the evaluation (validation) env's.
    """
    from rlagent.agents import warm_start

    model.set_logger(sb3_logger(verbose, model.tensorboard_log, _TB_NAME, True))
    result = warm_start(model, val_env_kwargs=config.resolved_eval_env_kwargs, logger=model.logger)
    logger.info(
        "Warm start: the policy agrees with the %s on %.3f of %d demonstration states "
        "(%.3f before; %s on validation), in %.1f s.",
        result.expert,
        result.accuracy,
        result.transitions,
        result.accuracy_before,
        "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.3f}",
        result.wall_time_s,
    )
    run_cb.init_callback(model)
    run_cb.checkpoint()


def _load_checkpoint_model(config: TrainConfig, checkpoint: Checkpoint) -> Any:
    """The checkpoint's model, optimizer included, with the run's training envs attached.

    The checkpoint's own pipeline builds the observations it was trained on. An older
    checkpoint's ``model.zip`` is unpickled: the caller has checked that it is trusted.
    """
    from types import SimpleNamespace

    from rlagent.agents import load, load_model, read_manifest
    from rlagent.pipeline import make_vec_env, pipeline_of

    def envs(pipeline: Any) -> Any:
        return make_vec_env(
            config.env_id,
            pipeline=pipeline,
            n_envs=config.n_envs,
            seed=config.seed + checkpoint.timesteps,
            env_kwargs=config.env_kwargs,
            reward_scale=config.reward_scale,
            reward_shaping=config.reward_shaping,
            expected_rewards=config.expected_rewards,
        )

    if checkpoint.pickled:
        model = load(checkpoint.model_path, device=config.device, trust=True)
        model.set_env(envs(pipeline_of(model)))
        return model
    spec = read_manifest(checkpoint.model_path).get("rlagent_spec") or {}
    venv = envs(pipeline_of(SimpleNamespace(rlagent_spec=spec)))
    return load_model(checkpoint.model_path, env=venv, device=config.device)


def _metrics(
    config: TrainConfig, model: Any, run_cb: RunCallback, target: int, *, interrupted: bool = False
) -> dict[str, Any]:
    """The run's ``metrics.json`` without its final evaluation and baselines."""
    wall = run_cb.elapsed()
    timesteps = int(model.num_timesteps)
    warm = (getattr(model, "rlagent_spec", None) or {}).get("warm_started")
    return {
        "env_id": config.env_id,
        "timesteps": timesteps,
        "target_timesteps": target,
        "wall_time_s": round(wall, 2),
        "fps": round(timesteps / max(wall, 1e-9), 1),
        "interrupted": interrupted or bool(run_cb.stop_flag),
        "stopped_early": run_cb.stopped_early,
        "config": config.to_dict(),
        "eval_history": run_cb.run_state.get("eval_history", []),
        "encoder_cache": cache_info(model),
        **({"warm_start": warm} if warm else {}),
    }


def _finish(
    config: TrainConfig,
    model: Any,
    run_cb: RunCallback,
    stop: StopFlag,
    metrics: dict[str, Any],
    out_dir: Path,
) -> None:
    """Final evaluation, averaging, ``model/``, baselines, plot and report, into ``metrics``.

    Each step can be redone: a run stopped or killed in between finishes with ``resume``.

    Raises:
        _Stopped: A signal asked to stop (checked between steps).
    """

    def check_stop() -> None:
        if stop:
            raise _Stopped

    check_stop()
    timesteps = int(model.num_timesteps)
    history = run_cb.run_state.get("eval_history") or []
    if not history or history[-1]["timesteps"] != timesteps:
        run_cb.run_evaluation()
    metrics["eval_history"] = run_cb.run_state["eval_history"]
    metrics["final"] = metrics["eval_history"][-1]
    check_stop()
    if config.average_checkpoints:
        metrics["final"] = _average_final_model(config, model, out_dir)
    save_model(model, out_dir / _MODEL)
    best_ts = run_cb.run_state.get("best_timesteps")
    metrics["best"] = next((e for e in metrics["eval_history"] if e["timesteps"] == best_ts), None)
    check_stop()
    metrics["baselines"] = _baselines(config)
    check_stop()
    plot_learning_curve(
        metrics["eval_history"],
        metrics["baselines"],
        out_dir / "learning_curve.png",
        main_metric=_main_metric(config),
        title=f"{config.env_id}: PPO with {config.encoder} encoder ({config.encoder_mode})",
    )
    write_report(out_dir / "report.md", metrics)
    _log_final(model, metrics["final"], timesteps)
    metrics["wall_time_s"] = round(run_cb.elapsed(), 2)


def _log_final(model: Any, final: dict[str, Any], timesteps: int) -> None:
    """Log the final evaluation to TensorBoard under ``final/``, at the final timestep."""
    for key, value in final.items():
        if key in _NOT_LOGGED or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        model.logger.record(f"final/{key}", float(value))
    model.logger.dump(timesteps)


def _finished_metrics(out_dir: Path, trained: int, target: int) -> dict[str, Any] | None:
    """The ``metrics.json`` of a run finished at ``trained`` steps with all its outputs."""
    try:
        metrics = json.loads((out_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    done = (
        isinstance(metrics, dict)
        and metrics.get("interrupted") is False
        and "final" in metrics
        and metrics.get("timesteps") == trained
        and (
            trained >= target
            or (metrics.get("stopped_early") and metrics.get("target_timesteps") == target)
        )
    )
    if not done or not all((out_dir / name).is_file() for name in _OUTPUTS):
        return None
    if not is_model_dir(out_dir / _MODEL):  # e.g. a run finished by an earlier rlagent
        return None
    return metrics
