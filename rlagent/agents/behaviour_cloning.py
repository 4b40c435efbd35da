"""Behaviour cloning: the policy's loss on an expert's actions, and a term PPO keeps for a while.

:func:`behaviour_cloning_loss` is the negative log-likelihood of the expert's actions under the
policy's action distribution (cross-entropy for a ``Discrete`` space; the action mask, when the
policy has one, applies as everywhere else), and :func:`policy_agreement` how often the
policy's most likely action is the expert's. :class:`BehaviourCloning` keeps a warm-started
policy from forgetting what it learnt while PPO takes over: after each rollout it takes
supervised steps on minibatches of the demonstrations, with a weight that decays linearly to 0
over a set number of timesteps, then recomputes the rollout's log-probabilities (as
:class:`rlagent.agents.AuxiliaryLoss` does). :func:`supervised_epoch` is the one supervised pass
over a set of decisions (cross-entropy, optionally weighted per decision, plus a value loss)
that the warm start and offline learning (:mod:`rlagent.agents.offline_learning`) share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn
from torch.nn import functional as F

from rlagent.agents.auxiliary import refresh_log_probs
from rlagent.agents.demonstrations import Demonstrations, WarmStartError

__all__ = [
    "BehaviourCloning",
    "CloningScores",
    "behaviour_cloning_loss",
    "cloning_scores",
    "policy_agreement",
    "supervised_epoch",
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
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's negative log-likelihood of the expert's actions, and its values.

    Args:
        policy: An SB3 actor-critic policy (e.g. :class:`rlagent.agents.TextActorCriticPolicy`).
        observations: A batch of model inputs ``{entry: [B, ...]}``.
        actions: The expert's actions ``[B]`` (or ``[B, k]``; a slate's log-probability is
            that of the whole ordered slate).
        allowed: ``[B]`` bool: rows whose action counts (an action the mask forbids has
            probability 0, so it is left out); ``None``: all.
        weights: ``[B]`` non-negative weight of each row's negative log-likelihood; ``None``:
            1 each.

    Returns:
        ``(loss, values)``: the mean of the (weighted) negative log-probabilities over the
        counted rows (a scalar, 0 when none counts) and the critic's values ``[B]`` of all the
        states (one forward pass serves both).
    """
    values, log_prob, _ = policy.evaluate_actions(observations, _actions_for(policy, actions))
    if weights is not None:
        # A row of weight 0 never counts, so an impossible action there cannot give inf * 0.
        counted = weights > 0 if allowed is None else allowed & (weights > 0)
        log_prob = torch.where(counted, log_prob, torch.zeros_like(log_prob)) * weights
        if allowed is not None:
            log_prob = log_prob[allowed]
    elif allowed is not None:
        log_prob = log_prob[allowed]
    loss = -log_prob.mean() if log_prob.numel() else log_prob.sum()
    return loss, values.flatten()


def supervised_epoch(
    policy: nn.Module,
    demonstrations: Demonstrations,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    rng: np.random.Generator,
    max_grad_norm: float,
    weights: np.ndarray | None = None,
    policy_coef: float = 1.0,
    value_coef: float = 0.5,
    extra_loss: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
    extra_coef: float = 1.0,
) -> dict[str, Any]:
    """One pass over ``demonstrations`` in minibatches shuffled by ``rng``: supervised steps.

    Each minibatch's loss is ``policy_coef`` times :func:`behaviour_cloning_loss` (weighted by
    ``weights`` when given), plus ``value_coef`` times the critic's squared error to the
    returns, plus ``extra_coef`` times ``extra_loss(observations)`` when given; gradients are
    clipped to ``max_grad_norm`` before ``optimizer`` steps. With ``policy_coef == 0`` only the
    critic is evaluated (a value-only pass).

    Args:
        policy: The actor-critic policy (left in training mode).
        demonstrations: The decisions: model inputs, actions, returns, allowed rows.
        optimizer: The optimizer of the trainable parameters.
        batch_size: Rows per minibatch.
        rng: Shuffles the rows.
        max_grad_norm: Gradient clipping norm.
        weights: ``[N]`` non-negative weight per row of the cross-entropy; ``None``: 1 each.
        policy_coef: Weight of the cross-entropy.
        value_coef: Weight of the critic's loss.
        extra_loss: Another loss of the batch (e.g. the auxiliary head's).
        extra_coef: Its weight.

    Returns:
        Mean ``policy_loss``, ``value_loss`` (and the unweighted ``extra_loss`` when given)
        over the minibatches.
    """
    policy.set_training_mode(True)
    params = [p for p in policy.parameters() if p.requires_grad]
    sums = {"policy_loss": 0.0, "value_loss": 0.0}
    if extra_loss is not None:
        sums["extra_loss"] = 0.0
    batches = 0
    for index in demonstrations.minibatches(batch_size, rng):
        observations, actions, returns = demonstrations.batch(index, policy.device)
        if policy_coef > 0:
            allowed = torch.as_tensor(demonstrations.allowed[index], device=policy.device)
            row_weights = None
            if weights is not None:
                row_weights = torch.as_tensor(
                    weights[index], dtype=torch.float32, device=policy.device
                )
            action_loss, values = behaviour_cloning_loss(
                policy, observations, actions, allowed, row_weights
            )
            loss = action_loss if policy_coef == 1 else policy_coef * action_loss
        else:
            values = policy.predict_values(observations).flatten()
            action_loss = loss = torch.zeros((), device=policy.device)
        value_loss = F.mse_loss(values, returns.float())
        loss = loss + value_coef * value_loss
        if extra_loss is not None:
            extra = extra_loss(observations)
            loss = loss + extra_coef * extra
            sums["extra_loss"] += float(extra.detach())
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        sums["policy_loss"] += float(action_loss.detach())
        sums["value_loss"] += float(value_loss.detach())
        batches += 1
    return {key: total / max(batches, 1) for key, total in sums.items()}


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
