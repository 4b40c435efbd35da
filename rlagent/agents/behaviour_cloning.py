"""Behaviour cloning: the policy's loss on an expert's actions, and a term PPO keeps for a while.

:func:`behaviour_cloning_loss` is the negative log-likelihood of the expert's actions under the
policy's action distribution (cross-entropy for a ``Discrete`` space; the action mask, when the
policy has one, applies as everywhere else), and :func:`policy_agreement` how often the
policy's most likely action is the expert's. :class:`BehaviourCloning` keeps a warm-started
policy from forgetting what it learnt while PPO takes over: after each rollout it takes
supervised steps on minibatches of the demonstrations, with a weight that decays linearly to 0
over a set number of timesteps, then recomputes the rollout's log-probabilities (as
:class:`rlagent.agents.AuxiliaryLoss` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from rlagent.agents.auxiliary import refresh_log_probs
from rlagent.agents.demonstrations import Demonstrations, WarmStartError

__all__ = [
    "BehaviourCloning",
    "CloningScores",
    "behaviour_cloning_loss",
    "cloning_scores",
    "policy_agreement",
]


def _actions_for(policy: nn.Module, actions: torch.Tensor) -> torch.Tensor:
    if isinstance(policy.action_space, spaces.Discrete):
        return actions.long().flatten()
    return actions


def behaviour_cloning_loss(
    policy: nn.Module,
    observations: dict[str, torch.Tensor],
    actions: torch.Tensor,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's negative log-likelihood of the expert's actions, and its values.

    Args:
        policy: An SB3 actor-critic policy (e.g. :class:`rlagent.agents.TextActorCriticPolicy`).
        observations: A batch of model inputs ``{entry: [B, ...]}``.
        actions: The expert's actions ``[B]`` (or ``[B, k]``).
        allowed: ``[B]`` bool: rows whose action counts (an action the mask forbids has
            probability 0, so it is left out); ``None``: all.

    Returns:
        ``(loss, values)``: the mean negative log-probability over the counted rows (a scalar,
        0 when none counts) and the critic's values ``[B]`` of all the states (one forward
        pass serves both).
    """
    values, log_prob, _ = policy.evaluate_actions(observations, _actions_for(policy, actions))
    if allowed is not None:
        log_prob = log_prob[allowed]
    loss = -log_prob.mean() if log_prob.numel() else log_prob.sum()
    return loss, values.flatten()


@dataclass(frozen=True)
class CloningScores:
    """How closely a policy follows the expert on demonstrations (evaluation mode, no noise).

    Attributes:
        accuracy: Share of states where the policy's most likely action is the expert's (a
            slate counts only when every position matches).
        policy_loss: Mean negative log-likelihood of the expert's actions, over the states
            whose action the mask allows (0.0 when none does).
        value_loss: Mean squared error of the critic to the expert's returns.
    """

    accuracy: float
    policy_loss: float
    value_loss: float


@torch.no_grad()
def cloning_scores(
    policy: nn.Module, demonstrations: Demonstrations, batch_size: int = 256
) -> CloningScores:
    """Score ``policy`` against the expert on ``demonstrations``.

    Args:
        policy: The policy.
        demonstrations: The states, the expert's actions and returns.
        batch_size: States per forward pass.

    Returns:
        The :class:`CloningScores` (all 0.0 for no demonstrations).
    """
    if not len(demonstrations):
        return CloningScores(0.0, 0.0, 0.0)
    training = policy.training
    policy.set_training_mode(False)
    hits, nll, squared = 0, 0.0, 0.0
    for index in demonstrations.minibatches(batch_size):
        observations, actions, returns = demonstrations.batch(index, policy.device)
        distribution = policy.get_distribution(observations)
        chosen = distribution.get_actions(deterministic=True).reshape(actions.shape)
        same = chosen.to(actions.dtype) == actions
        if same.dim() > 1:
            same = same.flatten(1).all(dim=1)
        hits += int(same.sum())
        allowed = torch.as_tensor(demonstrations.allowed[index], device=policy.device)
        log_prob = distribution.log_prob(_actions_for(policy, actions))
        nll -= float(log_prob[allowed].sum())
        values = policy.predict_values(observations).flatten()
        squared += float(((values - returns.float()) ** 2).sum())
    policy.set_training_mode(training)
    n = len(demonstrations)
    return CloningScores(hits / n, nll / max(int(demonstrations.allowed.sum()), 1), squared / n)


def policy_agreement(
    policy: nn.Module, demonstrations: Demonstrations, batch_size: int = 256
) -> float:
    """The share of demonstration states where the policy's most likely action is the expert's.

    See :func:`cloning_scores` (this is its ``accuracy``).
    """
    return cloning_scores(policy, demonstrations, batch_size).accuracy


class BehaviourCloning(BaseCallback):
    """Supervised steps towards an expert's actions after each rollout, with a decaying weight.

    After each rollout, while ``model.num_timesteps < decay_steps``, it takes ``batches``
    steps of ``coef(t) * behaviour_cloning_loss`` on random minibatches of the demonstrations
    with the policy's own optimizer (PPO's learning rate and Adam moments, PPO's gradient
    clipping), where ``coef(t) = coef * (1 - t / decay_steps)`` falls linearly to 0; then the
    rollout's log-probabilities are recomputed. The minibatches are drawn from a generator
    seeded with ``(seed, t)``, so a resumed run draws the same ones; the schedule reads the
    model's timestep counter, which a checkpoint keeps.

    :class:`rlagent.agents.TextPPO` runs it in ``learn`` when its settings have a warm start
    with ``bc_coef > 0`` (see :class:`rlagent.agents.WarmStartConfig`). Logs ``train/bc_coef``
    and, while it is positive, ``train/bc_loss``.

    Args:
        coef: Weight of the term at timestep 0.
        decay_steps: Timesteps over which the weight falls to 0 (0: no term).
        batches: Minibatches per rollout.
        batch_size: Demonstrations per minibatch.
        demonstrations: The demonstrations, or a function returning them (called when the
            term is first needed, e.g. to rebuild them in a resumed run); can also be set
            later through :attr:`demonstrations`.
        seed: Seed of the minibatch draws.
    """

    def __init__(
        self,
        coef: float,
        decay_steps: int,
        *,
        batches: int = 4,
        batch_size: int = 64,
        demonstrations: Demonstrations | Callable[[], Demonstrations] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not coef >= 0 or decay_steps < 0 or batches < 1 or batch_size < 1:
            raise WarmStartError(
                f"BehaviourCloning(coef={coef!r}, decay_steps={decay_steps!r}, "
                f"batches={batches!r}, batch_size={batch_size!r}): expected coef >= 0, "
                "decay_steps >= 0, batches >= 1 and batch_size >= 1."
            )
        self.coef = float(coef)
        self.decay_steps = int(decay_steps)
        self.batches = int(batches)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._demonstrations = demonstrations

    def coef_at(self, timesteps: int) -> float:
        """The term's weight after ``timesteps`` environment steps (0 from ``decay_steps`` on)."""
        if self.decay_steps <= 0:
            return 0.0
        return self.coef * max(0.0, 1.0 - int(timesteps) / self.decay_steps)

    @property
    def demonstrations(self) -> Demonstrations | None:
        """The demonstrations (built by the function given, on first use); ``None``: none yet."""
        if callable(self._demonstrations):
            self._demonstrations = self._demonstrations()
        return self._demonstrations

    @demonstrations.setter
    def demonstrations(self, value: Demonstrations | Callable[[], Demonstrations]) -> None:
        self._demonstrations = value

    def _on_training_start(self) -> None:
        if self.coef_at(self.model.num_timesteps) > 0 and self.demonstrations is None:
            raise WarmStartError(
                "Behaviour cloning has no demonstrations to learn from; run "
                "rlagent.agents.warm_start(model, ...) first, or set warm_start.bc_coef: 0."
            )

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model = self.model
        timesteps = int(model.num_timesteps)
        coef = self.coef_at(timesteps)
        self.logger.record("train/bc_coef", coef)
        demonstrations = self.demonstrations
        if coef <= 0 or demonstrations is None or not demonstrations.allowed.any():
            return
        policy = model.policy
        policy.set_training_mode(True)
        rng = np.random.default_rng([self.seed, timesteps])
        rows = np.flatnonzero(demonstrations.allowed)
        losses = []
        for _ in range(self.batches):
            index = rng.choice(rows, size=min(self.batch_size, len(rows)), replace=False)
            observations, actions, _ = demonstrations.batch(index, policy.device)
            loss, _ = behaviour_cloning_loss(policy, observations, actions)
            policy.optimizer.zero_grad()
            (coef * loss).backward()
            nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
            policy.optimizer.step()
            losses.append(loss.item())
        refresh_log_probs(model)
        self.logger.record("train/bc_loss", float(np.mean(losses)))
