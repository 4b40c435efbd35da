"""The Optuna backend: storage, study, sampler and pruner, and the objective each trial runs."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from rlagent.training.config import ConfigError, TrainConfig
from rlagent.training.tuning.config import TuneConfig, TuneConfigError, _redact, parse_storage
from rlagent.training.tuning.space import (
    _METRIC,
    _trial_config,
    _trial_dir,
    progress_step,
    sample_params,
)

# The package's logger: the name ``rlagent.training.tuning`` that log lines carry.
logger = logging.getLogger(__package__)

_OPTUNA_HINT = "Hyperparameter tuning needs Optuna: pip install rlagent[tune]"


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(f"{_OPTUNA_HINT} ({exc})") from exc
    return optuna


def _make_storage(config: TuneConfig) -> Any:
    optuna = _import_optuna()
    if config.storage is None:
        return optuna.storages.InMemoryStorage()
    kind, target = parse_storage(config.storage)
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(Path(target).expanduser())))
    engine_kwargs = {"connect_args": {"timeout": 60}} if target.startswith("sqlite") else None
    # Processes that start together may race to create the tables: retry briefly.
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(target, engine_kwargs=engine_kwargs)
        except Exception as exc:  # sqlalchemy's OperationalError and friends
            if attempt == 4:
                raise TuneConfigError(
                    f"storage = {_redact(config.storage)!r} could not be opened: {exc}"
                ) from exc
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _sampler_seed(config: TuneConfig, n_existing: int) -> int:
    """The sampler's seed: ``seed``, mixed with the process id and the study's size when shared.

    Processes joining one study, at once or one after another, then propose different trials.
    """
    if config.storage is None:
        return config.seed
    return (config.seed * 1_000_003 + os.getpid() * 7_919 + n_existing) % (2**31)


def _make_sampler(config: TuneConfig, n_existing: int = 0) -> Any:
    optuna = _import_optuna()
    seed = _sampler_seed(config, n_existing)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=config.n_startup_trials, seed=seed)


def _warmup_steps(config: TuneConfig) -> int:
    """The median rule stops trials from the evaluation after the first third of a trial."""
    return config.n_evaluations // 3 + 1


def _make_pruner(config: TuneConfig) -> Any:
    optuna = _import_optuna()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.n_startup_trials,
            n_warmup_steps=_warmup_steps(config),
        )
    if config.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _objective(config: TuneConfig, base: TrainConfig, out_dir: Path, numbers: list[int]) -> Any:
    from rlagent.training.run import train

    optuna = _import_optuna()

    def objective(trial: Any) -> float:
        numbers.append(trial.number)
        try:
            params = sample_params(
                trial, config.search_space, n_envs=base.n_envs, budget=base.n_timesteps
            )
        except ValueError as exc:  # a distribution that differs from the study's
            raise TuneConfigError(
                f"The search space does not match study {config.resolved_study_name!r} "
                f"({exc}). Every process of one study needs the same search space, "
                "--timesteps and n_envs (they decide the n_steps choices); use another "
                "--study-name for a different search."
            ) from exc
        run_config = _trial_config(base, params)
        trial.set_user_attr("batch_size", run_config.ppo.get("batch_size"))
        pruned = False

        def on_eval(entry: dict[str, Any]) -> bool:
            nonlocal pruned
            step = progress_step(entry["timesteps"], run_config.eval_freq)
            trial.report(float(entry[_METRIC]), step=step)
            trial.set_user_attr("timesteps", int(entry["timesteps"]))
            if entry["timesteps"] < run_config.n_timesteps and trial.should_prune():
                pruned = True
                return False
            return True

        try:
            result = train(run_config, _trial_dir(out_dir, trial.number), on_eval=on_eval)
        except ConfigError:
            raise
        except (ValueError, FloatingPointError, RuntimeError) as exc:
            # Typically a diverged run (NaN logits); the search goes on without this trial.
            logger.warning("Trial %d failed: %s", trial.number, exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            return float("nan")
        trial.set_user_attr("wall_time_s", round(result.wall_time_s, 2))
        trial.set_user_attr("fps", round(result.fps, 1))
        if result.interrupted:
            trial.set_user_attr("error", "interrupted")
            trial.study.stop()
            return float("nan")
        if pruned:
            raise optuna.TrialPruned(f"pruned after {result.timesteps} steps")
        return float(result.metrics["final"][_METRIC])

    return objective


def _run_optuna(
    config: TuneConfig, base: TrainConfig, out_dir: Path, study: Any, storage: Any
) -> list[int]:
    numbers: list[int] = []
    study.optimize(
        _objective(config, base, out_dir, numbers),
        n_trials=config.n_trials,
        timeout=config.timeout_s,
        gc_after_trial=True,
    )
    return numbers


def _create_study(config: TuneConfig, storage: Any, *, sampler: Any) -> Any:
    optuna = _import_optuna()
    study = optuna.create_study(
        storage=storage,
        study_name=config.resolved_study_name,
        sampler=sampler,
        pruner=_make_pruner(config),
        direction="maximize",
        load_if_exists=True,
    )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise TuneConfigError(
            f"Study {config.resolved_study_name!r} in {_redact(config.storage)} minimises its "
            "objective; rlagent maximises the mean return. Choose another --study-name."
        )
    return study
