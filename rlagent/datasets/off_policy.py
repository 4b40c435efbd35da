"""Off-policy evaluation of a target policy on logged episodes: the whole pipeline.

:func:`off_policy_evaluate` takes episodes (:func:`rlagent.datasets.read_episodes`) and a
target (:class:`rlagent.datasets.TargetPolicy`, or anything with ``action_space`` and
``outputs``), asks the target for its full distribution at every logged decision in batched
forward passes, fits the value model, checks support and runs every estimator of
:mod:`rlagent.datasets.ope`. :func:`evaluate_dataset` does the same from a dataset folder and a
model directory (``rlagent ope``).

Value models (``value_model``):

* ``"fqe"`` (default): linear fitted-Q evaluation of the target policy on the logged data
  (:func:`rlagent.datasets.fit_fqe`), on the target model's own features (its critic's last
  hidden layer and value, or its actor's last hidden layer where the critic reads privileged
  features), 2-fold cross-fitted so that doubly robust's correction is not fitted to its own
  noise.
* ``"critic"``: the target model's critic as it is, ``Q(s, a) = V(s) = critic(s)`` for every
  action. Unfitted and free, but only as good as the critic was for this env, its rewards and
  the policy; ``dm`` is then the critic's opinion of its own policy.
* ``None``: no value model; ``dm`` and ``dr`` are left out.

Behaviour support: a decision's recorded propensity is the probability of the action that was
actually taken; where it disagrees with the recorded distribution (a deterministic service
records 1.0 beside its policy's distribution; a planner its visit share), the behaviour is
taken to have put that propensity on the taken action alone and nothing elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from rlagent.datasets.episodes import DatasetError, Episode, _data_path, read_episodes
from rlagent.datasets.ope import DEFAULT_BOOTSTRAP, Estimate, effective_sample_size, estimate_all
from rlagent.datasets.ope_data import OPEError, SupportReport, check_support, ope_data
from rlagent.datasets.ope_models import FQEConfig, cross_fitted_q_and_v
from rlagent.datasets.target import TargetOutputs, n_joint_actions

__all__ = [
    "OPEReport",
    "Target",
    "action_indices",
    "dataset_env",
    "evaluate_dataset",
    "off_policy_evaluate",
]

#: The value models :func:`off_policy_evaluate` accepts (and ``None``).
VALUE_MODELS = ("fqe", "critic")
#: An effective sample size below this share of the episodes draws a warning.
LOW_ESS_SHARE = 0.1
#: How far a recorded propensity may differ from the recorded distribution's entry.
_PROPENSITY_TOLERANCE = 1e-4


@runtime_checkable
class Target(Protocol):
    """What :func:`off_policy_evaluate` asks of a target policy."""

    action_space: gym.Space

    def outputs(
        self, observations: Sequence[Any], masks: Sequence[np.ndarray | None] | None = None
    ) -> TargetOutputs:
        """The target's full distributions (and values, features) at ``observations``."""
        ...


@dataclass(frozen=True)
class OPEReport:
    """Every estimate of the target policy's value, with the checks behind them.

    Attributes:
        estimates: :class:`~rlagent.datasets.ope.Estimate` by name (``is``, ``wis``, ``pdis``,
            ``wpdis``, ``dm``, ``dr``).
        ess: The effective sample size of the (clipped) trajectory weights.
        episodes: Episodes evaluated.
        decisions: Decisions in them.
        support: The support check (:class:`~rlagent.datasets.ope_data.SupportReport`).
        warnings: Plain-language warnings (poor support, low ESS, clipping, a value model
            that could not be used).
        gamma: The discount.
        max_weight: The weight cap (``None``: no clipping).
        value_model: The value model of ``dm`` and ``dr`` (``"fqe"``, ``"critic"`` or
            ``None``).
    """

    estimates: Mapping[str, Estimate]
    ess: float
    episodes: int
    decisions: int
    support: SupportReport
    warnings: tuple[str, ...]
    gamma: float
    max_weight: float | None
    value_model: str | None

    def to_json(self) -> dict[str, Any]:
        """One JSON-ready dict: a key per estimator, then ``ess``, ``episodes`` and the rest."""
        out: dict[str, Any] = {name: e.to_json() for name, e in self.estimates.items()}
        out.update(
            ess=self.ess,
            episodes=self.episodes,
            decisions=self.decisions,
            warnings=list(self.warnings),
            support=self.support.to_json(),
            gamma=self.gamma,
            max_weight=self.max_weight,
            value_model=self.value_model,
        )
        return out

    def summary(self) -> str:
        """A small text table of the estimates, then the warnings."""
        lines = [f"{'estimator':<9} {'value':>10} {'95% interval':>25} {'clipped':>8}"]
        for name, e in self.estimates.items():
            interval = f"[{e.ci95[0]:.4g}, {e.ci95[1]:.4g}]"
            lines.append(f"{name:<9} {e.value:>10.4g} {interval:>25} {e.clipped_share:>8.1%}")
        lines.append(
            f"{self.episodes} episodes, {self.decisions} decisions, effective sample size "
            f"{self.ess:.1f}; value model: {self.value_model}"
        )
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])


def action_indices(actions: np.ndarray, action_space: gym.Space) -> np.ndarray:
    """Flat action indices ``[T]`` of logged actions (row-major for ``MultiDiscrete``).

    Args:
        actions: ``[T]`` (``Discrete``) or ``[T, k]`` (``MultiDiscrete``) actions.
        action_space: The env's action space.

    Returns:
        ``[T]`` indices into a full action distribution.

    Raises:
        OPEError: Actions that do not fit the space.
    """
    actions = np.asarray(actions)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(action_space.nvec).reshape(-1)
        rows = actions.reshape(len(actions), -1) if actions.size else np.zeros((0, nvec.size))
        if rows.shape[1] != nvec.size or (rows.size and ((rows < 0) | (rows >= nvec)).any()):
            raise OPEError(
                f"Logged actions of shape {actions.shape} do not fit {action_space}; the "
                "dataset was logged with another action space than the target's."
            )
        return np.ravel_multi_index(rows.T.astype(np.int64), nvec).astype(np.int64)
    flat = actions.reshape(-1).astype(np.int64)
    n = n_joint_actions(action_space)
    if flat.size != len(actions) or (flat.size and (flat.min() < 0 or flat.max() >= n)):
        raise OPEError(
            f"Logged actions {actions.reshape(-1)[:5].tolist()}... do not fit {action_space}; "
            "the dataset was logged with another action space than the target's."
        )
    return flat


def _behaviour_support(episode: Episode, actions: np.ndarray) -> tuple[np.ndarray, int]:
    """The behaviour's distribution for the support check, and how many rows were replaced."""
    recorded = np.nan_to_num(np.asarray(episode.action_probabilities, dtype=np.float64))
    steps = np.arange(len(actions))
    taken = recorded[steps, actions]
    differs = np.abs(taken - episode.propensities) > _PROPENSITY_TOLERANCE
    if differs.any():
        recorded = recorded.copy()
        recorded[differs] = 0.0
        recorded[steps[differs], actions[differs]] = episode.propensities[differs]
    return recorded, int(differs.sum())


def _masks(episode: Episode) -> list[Any]:
    mask = episode.infos.get("action_mask") if episode.infos else None
    steps = len(episode)
    return [None] * steps if mask is None else [np.asarray(mask[t]) for t in range(steps)]


def off_policy_evaluate(
    episodes: Sequence[Episode],
    target: Target,
    *,
    gamma: float = 1.0,
    max_weight: float | None = None,
    value_model: str | None = "fqe",
    fqe: FQEConfig | None = None,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    min_propensity: float = 1e-6,
    support_threshold: float = 0.01,
) -> OPEReport:
    """Estimate the target policy's value from logged episodes alone.

    Args:
        episodes: Logged episodes with the behaviour's propensities
            (:func:`rlagent.datasets.read_episodes`).
        target: The target policy (:class:`rlagent.datasets.TargetPolicy`).
        gamma: The discount of the value estimated (1: the undiscounted return).
        max_weight: Cap on cumulative importance weights (``None``: no clipping; biased).
        value_model: ``"fqe"``, ``"critic"`` or ``None`` (see the module docstring).
        fqe: Settings of the fitted-Q value model.
        n_bootstrap: Resamples for the self-normalised estimators' intervals.
        seed: Seed of the resampling and of the cross-fitting folds.
        min_propensity: Behaviour probability at or below which an action is unsupported.
        support_threshold: Target probability on unsupported actions that makes a decision
            poorly supported.

    Returns:
        The report (:meth:`OPEReport.to_json` for ``rlagent ope --json``).

    Raises:
        OPEError: No episodes, distributions of the wrong width, an unknown value model or one
            the target cannot give, or data the estimators refuse.
    """
    if value_model is not None and value_model not in VALUE_MODELS:
        raise OPEError(
            f"value_model={value_model!r} is unknown; expected one of {list(VALUE_MODELS)} or "
            "None (no dm, no dr)."
        )
    episodes = list(episodes)
    if not episodes:
        raise OPEError(
            "No episodes: off-policy evaluation needs at least one logged episode; check that "
            "the dataset holds decisions."
        )
    observations = [obs for e in episodes for obs in e.observations[: len(e)]]
    masks = [mask for e in episodes for mask in _masks(e)]
    outputs = target.outputs(observations, masks)
    n_actions = n_joint_actions(target.action_space)
    splits = np.cumsum([len(e) for e in episodes])[:-1]
    target_dists = np.split(outputs.probabilities, splits)
    actions, behaviour_dists, replaced = [], [], 0
    for i, episode in enumerate(episodes):
        width = np.asarray(episode.action_probabilities).reshape(len(episode), -1).shape[1]
        if len(episode) and width != n_actions:
            raise OPEError(
                f"Episode {i} records distributions over {width} actions but the target's "
                f"action space {target.action_space} has {n_actions}; evaluate with the env "
                "the dataset was logged on."
            )
        actions.append(action_indices(episode.actions, target.action_space))
        support_dist, count = _behaviour_support(episode, actions[-1])
        behaviour_dists.append(support_dist.reshape(len(episode), n_actions))
        replaced += count
    rewards = [e.rewards for e in episodes]
    target_taken = [d[np.arange(len(a)), a] for d, a in zip(target_dists, actions, strict=True)]
    q = v = None
    if value_model == "fqe":
        features = np.split(outputs.features, splits)
        q, v = cross_fitted_q_and_v(
            features, actions, rewards, target_dists, gamma=gamma, config=fqe, seed=seed
        )
    elif value_model == "critic":
        if outputs.values is None:
            raise OPEError(
                "value_model='critic' needs a critic that reads the observation alone; this "
                "model's critic reads privileged simulator features that logs lack: use "
                "value_model='fqe' (--value-model fqe)."
            )
        q = v = np.split(outputs.values, splits)
    data = ope_data(rewards, [e.propensities for e in episodes], target_taken, q=q, v=v)
    estimates = estimate_all(
        data, gamma=gamma, max_weight=max_weight, n_bootstrap=n_bootstrap, seed=seed
    )
    support = check_support(
        behaviour_dists, target_dists, min_propensity=min_propensity, threshold=support_threshold
    )
    weights = data.cumulative_weights(max_weight)[0][:, -1]
    ess = effective_sample_size(weights)
    warnings = _warnings(estimates, support, ess, len(episodes), replaced, max_weight)
    if value_model == "critic" and getattr(target, "critic_shaped", False):
        warnings.append(
            "The target model's critic was trained on shaped rewards (reward_shaping): its "
            "values are the shaped return, which differs from the env's by the shaping "
            "potential, so dm is biased and dr has more variance than it needs; use "
            "value_model='fqe' (--value-model fqe)."
        )
    return OPEReport(
        estimates=estimates,
        ess=ess,
        episodes=len(episodes),
        decisions=int(data.lengths.sum()),
        support=support,
        warnings=tuple(warnings),
        gamma=float(gamma),
        max_weight=max_weight,
        value_model=value_model,
    )


def _warnings(
    estimates: Mapping[str, Estimate],
    support: SupportReport,
    ess: float,
    episodes: int,
    replaced: int,
    max_weight: float | None,
) -> list[str]:
    out = []
    if support.warning():
        out.append(support.warning())
    if replaced:
        out.append(
            f"At {replaced} decisions the recorded propensity differs from the recorded "
            "distribution's probability of the action taken (a deterministic service records "
            "1.0, a planner its visit share): there the logger is taken to support the taken "
            "action alone."
        )
    if ess < LOW_ESS_SHARE * episodes:
        out.append(
            f"Effective sample size {ess:.1f} of {episodes} episodes: a few episodes carry "
            "most of the importance weight, so is, wis and their intervals are unreliable; "
            "prefer dr and wpdis, or log with a behaviour closer to the target."
        )
    if max_weight is not None:
        clipped = {name: e.clipped_share for name, e in estimates.items() if e.clipped_share}
        if clipped:
            shares = ", ".join(f"{name} {share:.1%}" for name, share in clipped.items())
            out.append(
                f"max_weight={max_weight:g} clipped weights ({shares}): the importance-weighted "
                "estimates are biased (downwards for positive rewards)."
            )
    if "wis" in estimates and not np.isfinite(estimates["wis"].value):
        out.append(
            "Every trajectory weight is 0 (the target never takes the logged actions): wis is "
            "undefined and the other importance-weighted estimates are 0."
        )
    return out


def dataset_env(dataset_dir: str | os.PathLike) -> tuple[str | None, dict[str, Any]]:
    """The env id and kwargs a dataset records (``rlagent`` metadata, else Minari's env spec).

    Args:
        dataset_dir: The dataset folder (or its ``data`` folder).

    Returns:
        ``(env_id, env_kwargs)``; ``(None, {})`` when the dataset names no env.

    Raises:
        DatasetError: Not a Minari dataset.
    """
    metadata = json.loads((_data_path(Path(dataset_dir)) / "metadata.json").read_text("utf-8"))
    own = metadata.get("rlagent") or {}
    if own.get("env_id"):
        return str(own["env_id"]), dict(own.get("env_kwargs") or {})
    spec = metadata.get("env_spec")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError:
            spec = None
    if isinstance(spec, Mapping) and spec.get("id"):
        return str(spec["id"]), dict(spec.get("kwargs") or {})
    return None, {}


def evaluate_dataset(
    dataset_dir: str | os.PathLike,
    model_path: str | os.PathLike,
    *,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    device: str = "cpu",
    **kwargs: Any,
) -> OPEReport:
    """Evaluate the model at ``model_path`` on the dataset at ``dataset_dir`` (``rlagent ope``).

    Args:
        dataset_dir: A logged-decision dataset (``rlagent logs export``, ``rlagent collect``).
        model_path: The target model's directory.
        env_id: The env of the dataset's observations; ``None``: the one the dataset records,
            else the model's own.
        env_kwargs: Its keyword arguments; ``None``: the dataset's (with its env id).
        device: Torch device of the model.
        **kwargs: Passed to :func:`off_policy_evaluate` (``gamma``, ``max_weight``...).

    Returns:
        The report.

    Raises:
        DatasetError: The dataset cannot be read.
        OPEError: See :func:`off_policy_evaluate`.
        rlagent.agents.ModelFileError: The model cannot be loaded.
    """
    from rlagent.datasets.target import TargetPolicy

    episodes = read_episodes(dataset_dir)
    if not episodes:
        raise DatasetError(
            f"{dataset_dir} holds no episodes; log some decisions before evaluating on it."
        )
    recorded_id, recorded_kwargs = dataset_env(dataset_dir)
    if env_id is None and recorded_id is not None:
        env_id = recorded_id
        env_kwargs = recorded_kwargs if env_kwargs is None else env_kwargs
    target = TargetPolicy.load(model_path, env_id=env_id, env_kwargs=env_kwargs, device=device)
    return off_policy_evaluate(episodes, target, **kwargs)
