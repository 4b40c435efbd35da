"""Behaviour policies of ``rlagent collect``: a full action distribution at every decision.

A behaviour policy answers, for a batch of raw observations, its full distribution over the
env's actions (``Discrete(n)``: ``n`` entries; ``MultiDiscrete(nvec)``: every ordered slate in
row-major order, ``prod(nvec)`` entries, the order of a dataset's ``action_probabilities``).
:func:`rlagent.datasets.collect` samples the action from it and records both.

* :class:`ModelBehaviour`: a trained model's own distribution, ``softmax(logits / t)`` at
  temperature ``t`` (1 by default; for slates the joint over ordered slates of the model's slate
  distribution, :class:`rlagent.agents.slate.SlateProbabilities`, with every score divided by
  ``t``); or, with ``epsilon``, epsilon-greedy around the action ``rlagent evaluate`` takes
  (the distribution's mode). One batched forward pass per call, through the model's own
  observation pipeline.
* :class:`BaselineBehaviour`: a baseline of the env (``env.unwrapped.BASELINES``), one instance
  per env. Its action is one-hot, or the baseline's own distribution where it declares one
  (``action_probabilities(observation)``, e.g. the bundled ``random`` baselines); with
  ``epsilon`` it is mixed with the uniform distribution.

Epsilon-soft: ``pi(a) = (1 - epsilon) * base(a) + epsilon * u(a)``, ``u`` uniform over the
actions the env allows (``env.action_masks()`` where the env has it and the space is
``Discrete``; else every action of the space: for slates every ordered slate
``MultiDiscrete`` holds, those that repeat a position included, since the env accepts them and
shows a repeated position once). A baseline's own random choices (tie-breaks) are part of the
state it acts on: the recorded probabilities are conditional on them, which keeps importance
sampling unbiased (the choices are independent of what follows) whenever ``epsilon > 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "BaselineBehaviour",
    "CollectError",
    "ModelBehaviour",
    "action_mask",
    "epsilon_soft",
    "flat_index",
    "has_action_masks",
]


class CollectError(ValueError):
    """``rlagent collect`` cannot run: a policy, a setting or an output folder it refuses."""


def has_action_masks(env: gym.Env) -> bool:
    """Whether the env has ``action_masks()`` over a ``Discrete`` action space."""
    masks = getattr(env.unwrapped, "action_masks", None)
    return callable(masks) and isinstance(env.action_space, gym.spaces.Discrete)


def action_mask(env: gym.Env) -> np.ndarray | None:
    """The env's current ``action_masks()`` as a bool vector, or ``None`` where it has none.

    Only ``Discrete`` action spaces get masks (one entry per action); a mask that allows
    nothing counts as no mask.
    """
    if not has_action_masks(env):
        return None
    mask = np.asarray(env.unwrapped.action_masks(), dtype=bool).reshape(-1)
    if mask.shape != (int(env.action_space.n),):
        raise CollectError(
            f"The env's action_masks() has {mask.size} entries; its action space "
            f"{env.action_space} has {int(env.action_space.n)} actions."
        )
    return mask if mask.any() else None


def flat_index(action: Any, action_space: gym.Space) -> int:
    """The index of ``action`` in a full distribution (row-major for ``MultiDiscrete``)."""
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in np.asarray(action_space.nvec).reshape(-1))
        return int(np.ravel_multi_index(tuple(int(a) for a in np.ravel(action)), nvec))
    return int(np.asarray(action).reshape(-1)[0]) - int(getattr(action_space, "start", 0))


def epsilon_soft(
    base: np.ndarray, epsilon: float, masks: Sequence[np.ndarray | None]
) -> np.ndarray:
    """``(1 - epsilon) * base + epsilon * uniform``, the uniform over each row's allowed actions.

    Args:
        base: ``[B, A]`` distributions (one-hot for a deterministic policy).
        epsilon: The exploration share, in ``[0, 1]``.
        masks: One bool mask ``[A]`` (or ``None``: every action) per row.

    Returns:
        ``[B, A]`` distributions.
    """
    uniform = np.empty_like(base)
    for row, mask in enumerate(masks):
        allowed = np.ones(base.shape[1]) if mask is None else np.asarray(mask, dtype=np.float64)
        uniform[row] = allowed / allowed.sum()
    return (1.0 - epsilon) * base + epsilon * uniform


def _one_hot(indices: Sequence[int], width: int) -> np.ndarray:
    out = np.zeros((len(indices), width))
    out[np.arange(len(indices)), np.asarray(indices, dtype=np.int64)] = 1.0
    return out


class BaselineBehaviour:
    """A baseline of the env, one instance per env slot, optionally epsilon-soft.

    Args:
        name: The baseline's name in ``env.unwrapped.BASELINES``.
        envs: The envs played in lockstep (the baseline of slot ``i`` reads ``envs[i]``).
        epsilon: Exploration share (``None``: none).
    """

    def __init__(self, name: str, envs: Sequence[gym.Env], *, epsilon: float | None) -> None:
        factory = envs[0].unwrapped.BASELINES[name]
        self.name = name
        self.epsilon = epsilon
        self.action_space = envs[0].action_space
        self.baselines = [factory(env) for env in envs]
        self.n_actions = _n_actions(self.action_space)
        self.stochastic = callable(getattr(self.baselines[0], "action_probabilities", None))

    @property
    def deterministic(self) -> bool:
        """Whether every decision has propensity 1 (a deterministic baseline, no epsilon)."""
        return not self.stochastic and not self.epsilon

    def identity(self) -> dict[str, Any]:
        """What the dataset's metadata records of the policy."""
        return {"kind": "baseline", "name": self.name, "epsilon": self.epsilon}

    def reset(self, slot: int, seed: int) -> None:
        """Start slot ``slot``'s episode (the baseline's own generator seeded with ``seed``)."""
        self.baselines[slot].reset(seed=seed)

    def distributions(
        self,
        slots: Sequence[int],
        observations: Sequence[Any],
        masks: Sequence[np.ndarray | None],
    ) -> np.ndarray:
        """``[B, A]``: the behaviour's distribution at each slot's observation."""
        rows = []
        for slot, observation in zip(slots, observations, strict=True):
            baseline = self.baselines[slot]
            # act() runs every step, so that a baseline with memory stays in step with the
            # episode even when the sampled action is another.
            action = baseline.act(observation)
            if self.stochastic:
                row = np.asarray(baseline.action_probabilities(observation), dtype=np.float64)
                if row.shape != (self.n_actions,):
                    raise CollectError(
                        f"Baseline {self.name!r} gives {row.size} action probabilities; the "
                        f"env's action space {self.action_space} has {self.n_actions} actions."
                    )
            else:
                row = _one_hot([flat_index(action, self.action_space)], self.n_actions)[0]
            rows.append(row)
        base = np.stack(rows)
        return base if not self.epsilon else epsilon_soft(base, self.epsilon, masks)


class ModelBehaviour:
    """A trained model's action distribution (tempered), or epsilon-greedy around its mode.

    Args:
        model: A text PPO model (:func:`rlagent.agents.load_model`).
        env: A raw env of the kind the observations come from (builds the pipeline; it is
            never stepped).
        temperature: Divides the logits (slate scores); ``None``: 1.
        epsilon: Epsilon-greedy around the mode instead of sampling the distribution.
        model_path: The model directory, for the identity.
        model_hash: Its hash (:func:`rlagent.agents.saving.model_hash`).
    """

    def __init__(
        self,
        model: Any,
        env: gym.Env,
        *,
        temperature: float | None,
        epsilon: float | None,
        model_path: str = "",
        model_hash: str = "",
    ) -> None:
        from rlagent.evaluation import check_model_fits_env
        from rlagent.pipeline import observation_converter, pipeline_of

        check_model_fits_env(model, env)
        self.model = model
        self.temperature = temperature
        self.epsilon = epsilon
        self.model_path = model_path
        self.model_hash = model_hash
        self.action_space = env.action_space
        self.n_actions = _n_actions(env.action_space)
        self.pipeline = pipeline_of(model)
        self._convert = observation_converter(env, self.pipeline)

    @property
    def deterministic(self) -> bool:
        """Whether every decision has propensity 1 (epsilon 0 around the mode)."""
        return self.epsilon == 0

    def identity(self) -> dict[str, Any]:
        """What the dataset's metadata records of the policy."""
        return {
            "kind": "model",
            "path": self.model_path,
            "model_hash": self.model_hash,
            "temperature": self.temperature,
            "epsilon": self.epsilon,
        }

    def reset(self, slot: int, seed: int) -> None:
        """Nothing to reset: the policy reads only the observation."""

    def distributions(
        self,
        slots: Sequence[int],
        observations: Sequence[Any],
        masks: Sequence[np.ndarray | None],
    ) -> np.ndarray:
        """``[B, A]``: the behaviour's distribution at each observation, one forward pass."""
        import torch

        from rlagent.pipeline import ACTION_MASK_KEY

        raw = []
        for observation, mask in zip(observations, masks, strict=True):
            item = dict(observation)
            if self.pipeline.action_mask:
                allowed = np.ones(self.n_actions) if mask is None else np.asarray(mask)
                item[ACTION_MASK_KEY] = allowed.astype(np.float32)
            raw.append(item)
        converted = [self._convert(item) for item in raw]
        batch = {key: np.stack([c[key] for c in converted]) for key in converted[0]}
        policy = self.model.policy
        policy.set_training_mode(False)
        tensor, _ = policy.obs_to_tensor(batch)
        with torch.no_grad():
            latent_pi, _ = policy._latents(tensor)
            distribution = policy.masked_distribution(
                policy._get_action_dist_from_latent(latent_pi), tensor
            )
            if self.epsilon is not None:
                modes = distribution.get_actions(deterministic=True).cpu().numpy()
            else:
                probs = _joint(distribution, self.temperature or 1.0)
        if self.epsilon is not None:
            rows = modes.reshape(len(raw), -1)
            indices = [flat_index(row, self.action_space) for row in rows]
            return epsilon_soft(_one_hot(indices, self.n_actions), self.epsilon, masks)
        probs = probs.double().cpu().numpy()
        if probs.shape[1] != self.n_actions:
            raise CollectError(
                f"The model gives {probs.shape[1]} action probabilities but the env's action "
                f"space {self.action_space} has {self.n_actions} actions."
            )
        if self.pipeline.action_mask:
            # A high temperature could lift the masked logits off -inf: keep masked at 0.
            for row, mask in enumerate(masks):
                if mask is not None:
                    probs[row] *= np.asarray(mask, dtype=np.float64)
        return probs / probs.sum(axis=1, keepdims=True)


def _n_actions(action_space: gym.Space) -> int:
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        return int(np.prod(action_space.nvec))
    raise CollectError(
        f"The env's action space is {action_space}; collect records full action distributions, "
        "so it needs a Discrete or a one-dimensional MultiDiscrete action space."
    )


def _joint(distribution: Any, temperature: float) -> Any:
    """``[B, A]`` probabilities of every action (ordered slate, row-major) at ``temperature``."""
    import torch
    from stable_baselines3.common.distributions import (
        CategoricalDistribution,
        MultiCategoricalDistribution,
    )

    from rlagent.agents.slate import SlateDistribution, SlateProbabilities

    t = float(temperature)
    if isinstance(distribution, SlateDistribution):
        return SlateProbabilities(
            distribution.logits.double() / t, distribution.slots, distribution.stop
        ).probs
    if isinstance(distribution, CategoricalDistribution):
        return torch.softmax(distribution.distribution.logits.double() / t, dim=-1)
    if isinstance(distribution, MultiCategoricalDistribution):
        joint = None
        for part in distribution.distribution:
            probs = torch.softmax(part.logits.double() / t, dim=-1)
            joint = probs if joint is None else (joint[:, :, None] * probs[:, None, :])
            joint = joint.reshape(probs.shape[0], -1)
        return joint
    raise CollectError(
        f"collect samples discrete action distributions; the model's is "
        f"{type(distribution).__name__}."
    )
