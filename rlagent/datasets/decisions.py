"""Logged episodes as a model reads them, and what their feedback says about hidden features.

:func:`logged_decisions` turns episodes into :class:`rlagent.agents.Demonstrations` through the
model's own observation pipeline (with returns, rewards, episode structure and propensities);
:func:`refit_probe` fits an agent's belief probe to the labels an env reads in the logged
rewards (``rlagent learn --probe-feedback``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlagent.datasets.episodes import DatasetError, Episode
from rlagent.datasets.off_policy import action_indices

__all__ = ["logged_decisions", "refit_probe"]


def logged_decisions(episodes: Sequence[Episode], model: Any, env: Any, gamma: float) -> Any:
    """The episodes' decisions as ``model`` reads them, with their returns in its reward units.

    Args:
        episodes: Logged episodes.
        model: A text agent (its observation pipeline and ``reward_scale`` are used).
        env: The raw env of the logged observations (never stepped).
        gamma: Discount of the returns.

    Returns:
        A :class:`rlagent.agents.Demonstrations`: one row per decision, in episode order;
        ``returns[i] = reward_scale * sum_k gamma^k r_{t+k}`` to the episode's end (a
        truncated episode is not bootstrapped), with each decision's scaled reward and the
        row of its episode's next decision (for AWR's lambda-returns); ``allowed[i]`` False
        where a logged ``action_mask`` forbade the logged action (left out of the cross-entropy).

    Raises:
        DatasetError: An observation that does not fit ``env``'s observation space.
        OPEError: Actions that do not fit ``env``'s action space.
    """
    import gymnasium as gym

    from rlagent.agents import Demonstrations
    from rlagent.pipeline import ACTION_MASK_KEY, observation_converter, pipeline_of

    pipeline = pipeline_of(model)
    convert = observation_converter(env, pipeline)
    space, action_space = env.observation_space, env.action_space
    discrete = isinstance(action_space, gym.spaces.Discrete)
    scale = float((getattr(model, "rlagent_spec", None) or {}).get("reward_scale", 1.0))
    rows: dict[str, list[np.ndarray]] = {}
    actions, returns, allowed, rewards, next_index, propensities = [], [], [], [], [], []
    for episode in episodes:
        flat = action_indices(episode.actions, action_space)
        mask_column = (episode.infos or {}).get("action_mask")
        for t in range(len(episode)):
            observation = episode.observations[t]
            if not isinstance(observation, Mapping) or not space.contains(dict(observation)):
                raise DatasetError(
                    f"Observation {t} of episode {episode.id} does not fit the env's "
                    "observation space: the dataset was logged on another env (or other "
                    "env_kwargs); pass the dataset's env id and kwargs."
                )
            raw = dict(observation)
            mask = None if mask_column is None else np.asarray(mask_column[t], dtype=np.float32)
            if pipeline.action_mask:
                n = int(action_space.n)
                raw[ACTION_MASK_KEY] = np.ones(n, np.float32) if mask is None else mask.reshape(n)
            for key, value in convert(raw).items():
                rows.setdefault(key, []).append(np.asarray(value))
            allowed.append(mask is None or not discrete or bool(mask.reshape(-1)[flat[t]] > 0.5))
        actions.append(np.asarray(episode.actions, dtype=np.int64).reshape(len(episode), -1))
        first = len(next_index)
        next_index += [first + t + 1 for t in range(len(episode) - 1)] + [-1] * bool(len(episode))
        rewards += list(np.asarray(episode.rewards, dtype=np.float64) * scale)
        propensities += list(np.asarray(episode.propensities, dtype=np.float64)[: len(episode)])
        total, to_go = 0.0, []
        for reward in reversed(np.asarray(episode.rewards, dtype=np.float64) * scale):
            total = float(reward) + gamma * total
            to_go.append(total)
        returns += to_go[::-1]
    stacked = np.concatenate(actions) if actions else np.zeros((0, 1), np.int64)
    return Demonstrations(
        observations={key: np.stack(values) for key, values in rows.items()},
        actions=stacked[:, 0] if discrete else stacked,
        returns=np.asarray(returns, dtype=np.float32),
        allowed=np.asarray(allowed, dtype=bool),
        episodes=len(episodes),
        rewards=np.asarray(rewards, dtype=np.float32),
        next_index=np.asarray(next_index, dtype=np.int64),
        gamma=float(gamma),
        propensities=np.asarray(propensities, dtype=np.float64),
    )


def refit_probe(
    model: Any,
    targets: Any,
    train: Any,
    val: Any,
    seed: int,
    anchor: float = 0.0,
    patience: int | None = None,
) -> dict[str, Any]:
    """Refit ``model``'s belief probe to the labels ``targets`` reads in the logged rewards.

    ``targets`` is the env's ``feedback_targets(action, reward)``
    (:func:`rlagent.agents.probe_feedback.env_feedback_targets`). With ``patience``, the
    validation decisions choose the number of passes (early stopping on their labelled loss);
    ``anchor`` pulls the head's weights towards where they started.

    Returns:
        ``train`` (:func:`rlagent.agents.probe_feedback.fit_probe`'s record) and, with
        validation decisions, ``val_before`` and ``val`` (their probe scores before and after).

    Raises:
        rlagent.agents.probe_feedback.ProbeFeedbackError: No probe, or no labelled decision.
    """
    from rlagent.agents.probe_feedback import (
        NO_PROBE,
        ProbeFeedbackError,
        feedback_labels,
        fit_probe,
        has_probe,
        probe_scores,
    )

    if not has_probe(model.policy):
        raise ProbeFeedbackError(NO_PROBE)
    n = int(model.policy.mlp_extractor.head.out_features)
    labels, mask = feedback_labels(train.actions, train.rewards, targets, n)
    record: dict[str, Any] = {}
    if val is not None:
        val_labels, val_mask = feedback_labels(val.actions, val.rewards, targets, n)
        record["val_before"] = probe_scores(model.policy, val, val_labels, val_mask)
    validation = (val, val_labels, val_mask) if val is not None and patience else None
    record["train"] = fit_probe(
        model.policy,
        train,
        labels,
        mask,
        anchor=anchor,
        validation=validation,
        patience=patience or 1,
        seed=seed,
    )
    if val is not None:
        record["val"] = probe_scores(model.policy, val, val_labels, val_mask)
    return record
