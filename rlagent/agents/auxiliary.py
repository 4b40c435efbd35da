"""Auxiliary targets: the actor learns to predict hidden state it never reads.

The env's hidden ``privileged_features()`` can travel in the rollout buffer beside every
observation, as the ``"privileged"`` entry a privileged critic reads (see
:mod:`rlagent.agents.asymmetric`). PPO teaches the actor's layers only through the advantage
of the action taken, a weak signal for *what* a piece of text says (which of eleven groups a
paraphrase belongs to, how upset its wording is). An auxiliary head on the actor's latent
vector predicts those hidden features from the observation alone, and :class:`AuxiliaryLoss`
trains it (and through it the actor's layers) by supervised steps on each rollout, so the
actor's features come to encode the hidden state as well as the text allows. The actor still
never reads the features: the prediction is made from the observation, with the privileged
columns zeroed (and the critic reads them only with ``privileged_critic``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn
from torch.nn import functional as F

__all__ = ["AuxiliaryLoss", "AuxiliaryTargetsError", "auxiliary_loss"]


class AuxiliaryTargetsError(ValueError):
    """Auxiliary targets that the policy cannot predict or must not read."""


def auxiliary_loss(policy: Any, observations: dict[str, torch.Tensor]) -> torch.Tensor:
    """Binary cross-entropy of the policy's auxiliary predictions against their targets.

    Args:
        policy: A :class:`rlagent.agents.TextActorCriticPolicy` built with
            ``auxiliary_targets`` (its ``auxiliary_head`` is not ``None``).
        observations: A batch of (tokenized) observations holding the target entry.

    Returns:
        The mean loss over the batch and the target columns (targets lie in [0, 1]).
    """
    head: nn.Module | None = getattr(policy, "auxiliary_head", None)
    if head is None:
        raise AuxiliaryTargetsError(
            "The policy has no auxiliary head; build it with make_ppo(..., "
            "auxiliary_targets=True) (or auxiliary_coef > 0 in a training config)."
        )
    features = policy.extract_features(observations, policy.pi_features_extractor)
    if isinstance(features, tuple):  # separate actor and critic extractors
        features = features[0]
    logits = head(policy.mlp_extractor.forward_actor(features))
    target = observations[policy.auxiliary_targets].reshape(logits.shape).float()
    return F.binary_cross_entropy_with_logits(logits, target.clamp(0.0, 1.0))


class AuxiliaryLoss(BaseCallback):
    """Supervised steps on the auxiliary targets after each rollout, before PPO's update.

    Each step minimises ``coef * auxiliary_loss`` with the policy's own optimizer (and PPO's
    gradient clipping) over minibatches of the rollout just collected. Those steps move the
    actor, so the buffer's log-probabilities are then recomputed: PPO's clipped ratio
    measures its own update from the policy as the auxiliary steps left it.

    Pass it to ``model.learn(callback=...)``; :func:`rlagent.training.train` does so when the
    config's ``auxiliary_coef`` is positive. Logs ``train/auxiliary_loss``.

    Args:
        coef: Weight of the auxiliary loss (its steps' gradient scale).
        epochs: Passes over the rollout per update.
    """

    def __init__(self, coef: float = 1.0, *, epochs: int = 1) -> None:
        super().__init__()
        if not coef > 0 or epochs < 1:
            raise AuxiliaryTargetsError(
                f"AuxiliaryLoss(coef={coef!r}, epochs={epochs!r}): expected coef > 0 and "
                "epochs >= 1."
            )
        self.coef = float(coef)
        self.epochs = int(epochs)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model = self.model
        policy = model.policy
        buffer = model.rollout_buffer
        policy.set_training_mode(True)
        losses = []
        for _ in range(self.epochs):
            for batch in buffer.get(model.batch_size):
                loss = self.coef * auxiliary_loss(policy, batch.observations)
                policy.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
                policy.optimizer.step()
                losses.append(loss.item() / self.coef)
        self._refresh_log_probs()
        self.logger.record("train/auxiliary_loss", float(np.mean(losses)))

    @torch.no_grad()
    def _refresh_log_probs(self) -> None:
        model = self.model
        buffer = model.rollout_buffer
        policy = model.policy
        policy.set_training_mode(False)
        n = buffer.buffer_size * buffer.n_envs  # get() has flattened the buffer
        flat = buffer.log_probs.reshape(-1)
        for start in range(0, n, model.batch_size):
            index = np.arange(start, min(start + model.batch_size, n))
            batch = buffer._get_samples(index)
            actions = batch.actions
            if isinstance(model.action_space, spaces.Discrete):
                actions = actions.long().flatten()
            _, log_prob, _ = policy.evaluate_actions(batch.observations, actions)
            flat[index] = log_prob.cpu().numpy()
