"""A trained model as the target policy of off-policy evaluation: its probabilities on logs.

:class:`TargetPolicy` turns logged env observations into the model's full action distribution,
its critic's value and a feature vector for value models, batched, through the model's own
observation pipeline (:func:`rlagent.pipeline.observation_converter`, the code that training,
``rlagent evaluate`` and the service use) and the same forward pass as
:class:`rlagent.serving.ServedAgent` (actor and critic latents, the action mask applied).

The distribution covers every action in the env's order: ``Discrete(n)``: ``n`` entries;
``MultiDiscrete(nvec)``: every ordered slate in row-major order (``prod(nvec)`` entries,
:class:`rlagent.agents.slate.SlateProbabilities` for a slate policy), the order of a dataset's
``action_probabilities``. A model that reads action masks gets the mask passed with each
observation, else every action allowed (logs record no masks unless a collector adds them).

Anything with ``action_space`` and ``outputs(observations, masks)`` works as a target for
:func:`rlagent.datasets.off_policy_evaluate` (a table in tests, a baseline policy).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlagent.datasets.ope_data import OPEError

__all__ = ["TargetOutputs", "TargetPolicy", "n_joint_actions"]

#: Observations per forward pass.
DEFAULT_BATCH = 128


@dataclass(frozen=True)
class TargetOutputs:
    """The target policy's outputs on ``N`` observations.

    Attributes:
        probabilities: ``[N, A]`` its full action distribution at each observation.
        values: ``[N]`` its critic's values in env reward units (the critic's output divided by
            the ``reward_scale`` it was trained with), or ``None`` where the critic reads
            privileged simulator features that logs lack.
        features: ``[N, d]`` state features for a fitted value model: the critic's last hidden
            layer and its value when the critic reads the observation alone, else the actor's
            last hidden layer.
    """

    probabilities: np.ndarray
    values: np.ndarray | None
    features: np.ndarray


def n_joint_actions(action_space: gym.Space) -> int:
    """The number of entries of a full action distribution of ``action_space``.

    Raises:
        OPEError: Not a ``Discrete`` or ``MultiDiscrete`` space.
    """
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return int(np.prod(action_space.nvec))
    raise OPEError(
        f"Off-policy evaluation needs a finite action space (Discrete or MultiDiscrete), got "
        f"{action_space}."
    )


class TargetPolicy:
    """A trained model's action probabilities, values and features on logged observations.

    Build it with :meth:`load` (a model directory) or from a loaded model and the raw text env
    whose observations the logs hold.

    Args:
        model: A text PPO model (:func:`rlagent.agents.load_model`).
        env: The raw env the logged observations come from (never stepped).
        env_id: The env's id, for messages.

    Raises:
        rlagent.agents.ModelEnvMismatchError: The model does not read ``env``'s observations.
        OPEError: ``env``'s actions are not finite.
    """

    def __init__(self, model: Any, env: gym.Env, *, env_id: str | None = None) -> None:
        from rlagent.evaluation import check_model_fits_env
        from rlagent.pipeline import observation_converter, pipeline_of

        check_model_fits_env(model, env)
        self.model = model
        self.env = env
        self.env_id = env_id or (env.spec.id if env.spec else type(env.unwrapped).__name__)
        self.action_space = env.action_space
        self.n_actions = n_joint_actions(env.action_space)
        self.pipeline = pipeline_of(model)
        self._convert = observation_converter(env, self.pipeline)
        spec = getattr(model, "rlagent_spec", None) or {}
        scale = float(spec.get("reward_scale", 1.0))
        self._value_scale = 1.0 / scale
        #: The critic was trained on shaped rewards (``reward_shaping``): its values are the
        #: shaped return, off the env's by the shaping potential.
        self.critic_shaped = bool(spec.get("reward_shaping", False))

    @classmethod
    def load(
        cls,
        model_path: str | os.PathLike,
        *,
        env_id: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        device: str = "cpu",
    ) -> TargetPolicy:
        """Load a model directory (the safe format) and build the env its logs come from.

        Args:
            model_path: A model directory (:func:`rlagent.agents.save_model`).
            env_id: The env of the logged observations; ``None``: the model's own.
            env_kwargs: Its keyword arguments; ``None``: the model's saved ones when
                ``env_id`` is its own (else none).
            device: Torch device of the model.

        Returns:
            The target policy.

        Raises:
            rlagent.agents.ModelFileError: ``model_path`` is not a readable model directory.
            OPEError: No env id is given or saved with the model.
            rlagent.agents.ModelEnvMismatchError: The model does not read the env.
        """
        from rlagent.agents.loading import load_model
        from rlagent.agents.saving import resolve_model_dir
        from rlagent.env_making import make_env

        path = resolve_model_dir(Path(model_path))
        model = load_model(path, device=device)
        spec = getattr(model, "rlagent_spec", None) or {}
        saved_id = spec.get("env_id")
        if env_id is None:
            env_id = saved_id
            if not env_id:
                raise OPEError(
                    f"The model at {path} records no env id; pass env_id= (--env ID), the env "
                    "whose observations the dataset holds."
                )
        if env_kwargs is None:
            env_kwargs = dict(spec.get("env_kwargs") or {}) if env_id == saved_id else {}
        return cls(model, make_env(env_id, env_kwargs), env_id=env_id)

    def outputs(
        self,
        observations: Sequence[Any],
        masks: Sequence[np.ndarray | None] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH,
    ) -> TargetOutputs:
        """The model's distribution, value and features at each observation, batched.

        Args:
            observations: Raw env observations (as :func:`rlagent.datasets.read_episodes`
                returns them).
            masks: One action mask (or ``None``: all allowed) per observation, used when the
                model reads masks.
            batch_size: Observations per forward pass.

        Returns:
            The outputs, in order.

        Raises:
            OPEError: An observation does not fit the env's observation space, or the masks
                do not match the observations.
        """
        observations = list(observations)
        masks = [None] * len(observations) if masks is None else list(masks)
        if len(masks) != len(observations):
            raise OPEError(
                f"Got {len(masks)} masks for {len(observations)} observations; pass one mask "
                "(or None) per observation, or masks=None."
            )
        parts = [
            self._forward(observations[i : i + batch_size], masks[i : i + batch_size], i)
            for i in range(0, len(observations), max(1, batch_size))
        ]
        if not parts:
            empty = np.zeros((0, self.n_actions))
            critic = None if self.pipeline.critic_reads_privileged else np.zeros(0)
            return TargetOutputs(empty, critic, np.zeros((0, 0)))
        values = None if parts[0].values is None else np.concatenate([p.values for p in parts])
        return TargetOutputs(
            np.concatenate([p.probabilities for p in parts]),
            values,
            np.concatenate([p.features for p in parts]),
        )

    def _raw(self, index: int, observation: Any, mask: Any) -> dict[str, Any]:
        from rlagent.pipeline import ACTION_MASK_KEY

        space = self.env.observation_space
        if not isinstance(observation, Mapping) or not space.contains(dict(observation)):
            raise OPEError(
                f"Observation {index} does not fit {self.env_id}'s observation space: the "
                "dataset was logged on another env (or other env_kwargs) than the one the "
                "target reads; pass the dataset's env id and kwargs."
            )
        raw = dict(observation)
        if self.pipeline.action_mask:
            n = int(self.env.action_space.n)
            allowed = np.ones(n, dtype=np.float32) if mask is None else np.asarray(mask)
            if allowed.reshape(-1).shape != (n,):
                raise OPEError(
                    f"Mask {index} has {allowed.size} entries; expected one per action ({n})."
                )
            raw[ACTION_MASK_KEY] = allowed.reshape(-1).astype(np.float32)
        return raw

    def _forward(self, observations: list, masks: list, offset: int) -> TargetOutputs:
        import torch

        pairs = enumerate(zip(observations, masks, strict=True))
        raw = [self._raw(offset + i, obs, mask) for i, (obs, mask) in pairs]
        converted = [self._convert(obs) for obs in raw]
        batch = {key: np.stack([c[key] for c in converted]) for key in converted[0]}
        policy = self.model.policy
        policy.set_training_mode(False)
        tensor, _ = policy.obs_to_tensor(batch)
        with torch.no_grad():
            latent_pi, latent_vf = policy._latents(tensor)
            distribution = policy.masked_distribution(
                policy._get_action_dist_from_latent(latent_pi), tensor
            )
            probabilities = _joint_probabilities(distribution)
            values = policy.value_net(latent_vf).reshape(-1, 1)
        probabilities = probabilities.float().cpu().numpy().astype(np.float64)
        if probabilities.shape[1] != self.n_actions:
            raise OPEError(
                f"The model gives {probabilities.shape[1]} action probabilities but "
                f"{self.env_id}'s action space has {self.n_actions} actions."
            )
        if self.pipeline.critic_reads_privileged:
            return TargetOutputs(probabilities, None, _numpy(latent_pi))
        values_np = _numpy(values) * self._value_scale
        features = np.concatenate([_numpy(latent_vf), values_np], axis=1)
        return TargetOutputs(probabilities, values_np[:, 0], features)


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.float().cpu().numpy().astype(np.float64)


def _joint_probabilities(distribution: Any) -> Any:
    """``[B, A]`` probabilities of every action (ordered slate, row-major) of a distribution."""
    from stable_baselines3.common.distributions import (
        CategoricalDistribution,
        MultiCategoricalDistribution,
    )

    from rlagent.agents.slate import SlateDistribution

    if isinstance(distribution, SlateDistribution | CategoricalDistribution):
        return distribution.distribution.probs
    if isinstance(distribution, MultiCategoricalDistribution):
        joint = None
        for part in distribution.distribution:
            probs = part.probs
            joint = probs if joint is None else (joint[:, :, None] * probs[:, None, :])
            joint = joint.reshape(probs.shape[0], -1)
        return joint
    raise OPEError(
        f"Off-policy evaluation reads discrete action distributions; the model's is "
        f"{type(distribution).__name__}."
    )
