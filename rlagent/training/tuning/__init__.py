"""Hyperparameter search behind ``rlagent tune``: Optuna on one machine, Ray Tune on a cluster.

Each trial is an ordinary training run (:func:`rlagent.training.train`) in
``<out_dir>/trials/trial_<n>`` whose PPO and encoder settings come from :class:`SearchSpace`.
The trial's periodic evaluations are reported to the search so that poor trials stop early
(median or successive-halving pruning); the objective, maximised, is the mean return of the
final evaluation.

With ``storage`` (a database URL such as ``sqlite:///tune.db``, or a journal file path such as
``tune.log``) the study lives outside the process: several processes, on one machine or many,
started with the same ``storage`` and ``study_name`` join one study and share its results
(the RL Baselines3 Zoo convention). ``backend="ray"`` runs the same search through Ray Tune,
with Ray's own early stopping, and records it in the same Optuna study.

Results in ``out_dir``: ``summary.json``, ``summary.md``, ``best_config.yaml`` (usable with
``rlagent train --config``) and ``trials.png`` (objective per trial, best so far, and each
trial's evaluations).

Example:
    >>> from rlagent.training.tuning import TuneConfig, tune
    >>> config = TuneConfig(env_id="rlagent/CustomerService-v0", n_trials=20)
    >>> summary = tune(config)  # doctest: +SKIP
    >>> summary["best_trial"]["params"]  # doctest: +SKIP
"""

from rlagent.training.tuning.config import (
    BACKENDS,
    NET_ARCHS,
    PRUNERS,
    SAMPLERS,
    SearchSpace,
    TuneConfig,
    TuneConfigError,
    TuneError,
    parse_storage,
)
from rlagent.training.tuning.results import format_tune_summary, plot_trials
from rlagent.training.tuning.search import tune
from rlagent.training.tuning.space import (
    base_train_config,
    params_to_overrides,
    progress_step,
    sample_params,
)

__all__ = [
    "BACKENDS",
    "NET_ARCHS",
    "PRUNERS",
    "SAMPLERS",
    "SearchSpace",
    "TuneConfig",
    "TuneConfigError",
    "TuneError",
    "base_train_config",
    "format_tune_summary",
    "params_to_overrides",
    "parse_storage",
    "plot_trials",
    "progress_step",
    "sample_params",
    "tune",
]
