"""Leaf evaluation by an SB3 actor-critic: priors from the actor, values from the critic.

The search hands over batches of leaf states (``MCTSConfig.batch_size`` with virtual loss); this
evaluator turns each into the policy's input (raw observation from the model's ``observe``,
then the tokenizer wrapper the policy was trained with) and runs *one* forward pass for the
whole batch: this is where a GPU pays off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlagent.planning.model import PlanningStateError

__all__ = ["PolicyEvaluator"]


class PolicyEvaluator:
    """Priors and values for planning states from an SB3 ``ActorCriticPolicy``.

    Args:
        policy: An SB3 actor-critic policy (``model.policy`` of a PPO/A2C model) or the model.
        observe: Maps a planning state to the raw observation (e.g. ``EnvModel.observe``).
        preprocess: Maps a raw observation to the policy's input (e.g. the ``observation``
            method of :class:`rlagent.wrappers.TokenizeText`); identity when ``None``.
        value_scale: Multiplies the critic's value (keep 1 unless rewards were rescaled).

    Priors are the action distribution's probabilities over the planning indices: for
    ``Discrete`` actions ``[n]``; for ``MultiDiscrete`` the product of the per-dimension
    probabilities in row-major order (matching :class:`rlagent.planning.EnvModel`).
    """

    def __init__(
        self,
        policy: Any,
        observe: Callable[[Any], Any],
        *,
        preprocess: Callable[[Any], Any] | None = None,
        value_scale: float = 1.0,
    ) -> None:
        policy = getattr(policy, "policy", policy)
        for name in ("obs_to_tensor", "get_distribution", "predict_values"):
            if not callable(getattr(policy, name, None)):
                raise PlanningStateError(
                    f"PolicyEvaluator: {type(policy).__name__} has no {name}(); pass a "
                    "Stable-Baselines3 actor-critic model (PPO, A2C) or its .policy."
                )
        self.policy = policy
        self.observe = observe
        self.preprocess = preprocess
        self.value_scale = float(value_scale)
        self.forward_passes = 0
        self.states_evaluated = 0

    def evaluate(self, state: Any, rng: np.random.Generator) -> tuple[list[float], float]:
        """``(priors, value)`` of one state."""
        return self.evaluate_batch([state], rng)[0]

    def evaluate_batch(
        self, states: Sequence[Any], rng: np.random.Generator
    ) -> list[tuple[list[float], float]]:
        """``(priors, value)`` of each state, from one forward pass."""
        import torch

        preprocess = self.preprocess
        observations = []
        for state in states:
            obs = self.observe(state)
            observations.append(preprocess(obs) if preprocess is not None else obs)
        if isinstance(observations[0], dict):
            batch: Any = {
                k: np.stack([np.asarray(o[k]) for o in observations]) for k in observations[0]
            }
        else:
            batch = np.stack([np.asarray(o) for o in observations])
        policy = self.policy
        with torch.no_grad():
            tensor, _ = policy.obs_to_tensor(batch)
            distribution, values_t = _actor_critic(policy, tensor)
            values = values_t.reshape(-1).float().cpu().numpy()
        if isinstance(distribution, list):  # MultiDiscrete: one Categorical per dimension
            probs = distribution[0].probs.float().cpu().numpy()
            for part in distribution[1:]:
                p = part.probs.float().cpu().numpy()
                probs = (probs[:, :, None] * p[:, None, :]).reshape(len(states), -1)
        elif hasattr(distribution, "probs"):
            probs = distribution.probs.float().cpu().numpy()
        else:
            raise PlanningStateError(
                f"PolicyEvaluator: the action distribution {type(distribution).__name__} has no "
                "probabilities; planning needs Discrete or MultiDiscrete actions."
            )
        self.forward_passes += 1
        self.states_evaluated += len(states)
        scale = self.value_scale
        return [(probs[i].tolist(), scale * float(values[i])) for i in range(len(states))]


def _actor_critic(policy: Any, obs: Any) -> tuple[Any, Any]:
    """Action distribution and values with the features extracted once (as SB3's forward)."""
    if not all(hasattr(policy, n) for n in ("mlp_extractor", "value_net", "extract_features")):
        return policy.get_distribution(obs).distribution, policy.predict_values(obs)
    features = policy.extract_features(obs)
    if getattr(policy, "share_features_extractor", True):
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features)
    distribution = policy._get_action_dist_from_latent(latent_pi)
    masked = getattr(policy, "masked_distribution", None)
    if masked is not None:  # a policy trained with action masks: forbidden actions get 0
        distribution = masked(distribution, obs)
    return distribution.distribution, policy.value_net(latent_vf)
