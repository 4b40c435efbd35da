"""Datasets of logged decisions and off-policy evaluation of a target policy on them.

:func:`read_episodes` reads a Minari dataset written by ``rlagent logs export`` (an interaction
log) or by :func:`collect` (``rlagent collect``: episodes of a model or a baseline played in the
simulator, :mod:`rlagent.datasets.collect`), both through the one writer
:mod:`rlagent.datasets.writing`; see :mod:`rlagent.datasets.episodes`.
:func:`off_policy_evaluate` estimates a target policy's value from such episodes alone
(:mod:`rlagent.datasets.off_policy`), with the estimators of :mod:`rlagent.datasets.ope` on
the arrays of :mod:`rlagent.datasets.ope_data` and the value models of
:mod:`rlagent.datasets.ope_models`. :func:`learn_from_dataset` trains a policy from such episodes
alone (:mod:`rlagent.datasets.offline`: behaviour cloning weighted by feedback, or
advantage-weighted regression). Nothing here imports torch until a model is loaded.
"""

from rlagent.datasets.behaviour import CollectError
from rlagent.datasets.collect import DeterministicBehaviourWarning, collect, collect_summary
from rlagent.datasets.episodes import DatasetError, Episode, read_episodes
from rlagent.datasets.off_policy import (
    OPEReport,
    Target,
    action_indices,
    dataset_env,
    evaluate_dataset,
    off_policy_evaluate,
)
from rlagent.datasets.offline import (
    FEEDBACK_WEIGHTS,
    GOOD_RATING,
    OfflineResult,
    episode_outcome,
    feedback_weights,
    learn_from_dataset,
    logged_decisions,
    split_episodes,
)
from rlagent.datasets.ope import (
    ESTIMATORS,
    Estimate,
    direct_method,
    doubly_robust,
    effective_sample_size,
    estimate_all,
    importance_sampling,
    per_decision_importance_sampling,
    weighted_importance_sampling,
    weighted_per_decision_importance_sampling,
)
from rlagent.datasets.ope_data import OPEData, OPEError, SupportReport, check_support, ope_data
from rlagent.datasets.ope_models import (
    FQEConfig,
    LinearQ,
    cross_fitted_q_and_v,
    fit_fqe,
    q_and_v,
)
from rlagent.datasets.target import TargetOutputs, TargetPolicy
from rlagent.datasets.writing import DatasetWriteError, DatasetWriter, write_dataset

__all__ = [
    "ESTIMATORS",
    "FEEDBACK_WEIGHTS",
    "GOOD_RATING",
    "OfflineResult",
    "episode_outcome",
    "feedback_weights",
    "learn_from_dataset",
    "logged_decisions",
    "split_episodes",
    "CollectError",
    "DatasetError",
    "DatasetWriteError",
    "DatasetWriter",
    "DeterministicBehaviourWarning",
    "Episode",
    "Estimate",
    "FQEConfig",
    "LinearQ",
    "OPEData",
    "OPEError",
    "OPEReport",
    "SupportReport",
    "Target",
    "TargetOutputs",
    "TargetPolicy",
    "action_indices",
    "check_support",
    "collect",
    "collect_summary",
    "cross_fitted_q_and_v",
    "dataset_env",
    "direct_method",
    "doubly_robust",
    "effective_sample_size",
    "estimate_all",
    "evaluate_dataset",
    "fit_fqe",
    "off_policy_evaluate",
    "importance_sampling",
    "ope_data",
    "per_decision_importance_sampling",
    "q_and_v",
    "read_episodes",
    "weighted_importance_sampling",
    "weighted_per_decision_importance_sampling",
    "write_dataset",
]
