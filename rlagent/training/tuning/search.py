"""One hyperparameter search from start to end: check, run the backend, write the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlagent.training.config import check_config_names
from rlagent.training.tuning.config import TuneConfig, TuneConfigError, TuneError
from rlagent.training.tuning.optuna_backend import (
    _create_study,
    _make_sampler,
    _make_storage,
    _run_optuna,
)
from rlagent.training.tuning.ray_backend import _run_ray
from rlagent.training.tuning.results import _summarise
from rlagent.training.tuning.space import base_train_config


def _check_trials_dir(out_dir: Path, n_existing: int) -> None:
    trials = out_dir / "trials"
    if n_existing == 0 and trials.is_dir() and any(trials.iterdir()):
        raise TuneConfigError(
            f"{trials} already holds trial runs of another study; the new study would write "
            "over them. Choose another --out, delete that folder, or pass the --storage and "
            "--study-name of the study that made them to continue it."
        )


def tune(config: TuneConfig) -> dict[str, Any]:
    """Run a hyperparameter search and write its summary, plot and best configuration.

    Args:
        config: The search (see :class:`TuneConfig`).

    Returns:
        A JSON-ready summary: ``best_trial`` (``number``, ``value``, ``params``, ``run_dir``,
        ``config``) or ``None``, ``n_trials`` (all trials in the study, from every process),
        ``n_complete``/``n_pruned``/``n_failed``, ``study_name``, ``storage``, ``files``
        (``summary_json``, ``summary_md``, ``plot``, ``config``) and ``trials``.

    Raises:
        TuneConfigError: Bad settings or storage, or an output folder holding another study.
        ConfigError: The env's configuration cannot be used.
        UnknownEnvError: The env id is not registered.
        EnvKwargsError: An env keyword argument the env does not take, or of the wrong type.
        EncoderNotFoundError: The encoder cannot be found on this machine.
        ImportError: Optuna (or Ray for ``backend="ray"``) is not installed.
        TuneError: No trial of this run could be trained.
    """
    from rlagent.env_making import find_env_spec

    # Unknown ids, env kwargs and encoders fail here, before any trial, with "did you mean".
    find_env_spec(config.env_id)  # before the env's config is read
    base = base_train_config(config)
    check_config_names(base)
    out_dir = config.resolved_out_dir
    storage = _make_storage(config)
    study = _create_study(config, storage, sampler=None)
    n_existing = len(study.get_trials(deepcopy=False))
    _check_trials_dir(out_dir, n_existing)
    study.sampler = _make_sampler(config, n_existing)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _run_ray if config.backend == "ray" else _run_optuna
    numbers = run(config, base, out_dir, study, storage)
    summary = _summarise(config, base, study, out_dir, numbers)
    mine = [t for t in summary["trials"] if t["number"] in set(numbers)]
    if mine and not summary["interrupted"] and all(t["state"] == "FAIL" for t in mine):
        errors = [t["error"] for t in mine if t.get("error")]
        raise TuneError(
            f"All {len(mine)} trials of this run failed"
            + (f"; the first error: {errors[0]}" if errors else "")
            + f". See {summary['files']['summary_md']}."
        )
    return summary
