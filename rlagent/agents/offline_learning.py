"""Offline policy learning on logged decisions: weighted behaviour cloning and AWR.

A dataset of logged episodes (:mod:`rlagent.datasets`) turned into model inputs is a
:class:`rlagent.agents.Demonstrations` whose actions are the logger's and whose returns are the
logged rewards' discounted returns-to-go. :func:`fit_offline` trains a model's policy and critic
on it without touching a simulator, with the same supervised pass as the warm start
(:func:`rlagent.agents.behaviour_cloning.supervised_epoch`):

* ``"bc"``, behaviour cloning weighted by feedback: each epoch one pass of
  ``mean_i(w_i * -log pi(a_i | s_i)) + value_coef * mean_i((V(s_i) - G_i)^2)``, where ``w_i``
  is the weight of decision ``i`` given by the caller (its episode's feedback; see
  :func:`rlagent.datasets.feedback_weights`).
* ``"awr"``, advantage-weighted regression (Peng, Kumar, Zhang and Levine 2019) with the critic
  fitted offline: each epoch first ``critic_epochs`` value-only passes of
  ``mean_i((V(s_i) - G_i)^2)`` (the model's own critic regressed on the Monte-Carlo returns of
  the logged episodes), then one policy pass of ``mean_i(w_i * -log pi(a_i | s_i))`` with
  ``w_i = min(exp((G_i - V(s_i)) / beta), max_weight)`` (:func:`advantage_weights`), ``V``
  the critic after those passes. A slate's ``log pi`` is that of the whole ordered slate.

Returns are in the model's reward units (the logged rewards times its ``reward_scale``), so
``beta`` is too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rlagent.agents._checks import check_ranges, is_integer, is_number
from rlagent.agents.behaviour_cloning import _actions_for, supervised_epoch
from rlagent.agents.demonstrations import Demonstrations

__all__ = [
    "METHODS",
    "OfflineConfig",
    "OfflineLearningError",
    "OfflineScores",
    "advantage_weights",
    "fit_offline",
    "offline_scores",
    "predicted_values",
]

#: The offline methods: weighted behaviour cloning and advantage-weighted regression.
METHODS = ("bc", "awr")
#: What AWR's policy stays close to: the logger, or the starting model.
AWR_PRIORS = ("logger", "init")
#: States per forward pass when scoring or predicting values.
_SCORE_BATCH = 256


class OfflineLearningError(ValueError):
    """Offline learning that cannot run as asked (an unknown method, unusable data)."""


@dataclass(frozen=True)
class OfflineConfig:
    """Settings of :func:`fit_offline`.

    Attributes:
        method: ``"bc"`` (behaviour cloning weighted by feedback) or ``"awr"``
            (advantage-weighted regression).
        epochs: Passes over the decisions (``"awr"``: policy passes, each after
            ``critic_epochs`` value passes); 0 leaves the policy as it starts (with
            ``probe_feedback``: only the probe is refitted).
        batch_size: Decisions per minibatch.
        learning_rate: Learning rate of Adam.
        value_coef: ``"bc"``: weight of the critic's loss beside the cloning loss.
        awr_beta: AWR's temperature, in the model's reward units.
        awr_max_weight: AWR's cap on a decision's weight.
        critic_epochs: AWR's value-only passes before each policy pass.
        awr_lambda: AWR's advantage estimator: 1 (the default) compares Monte-Carlo returns
            with the critic, ``G - V(s)``; lower values use lambda-returns (as in GAE), which
            lean on the critic at the next decisions: 0 scores a decision by its own reward
            and the next state's value, ``r + gamma V(s') - V(s)``, so a bad action is not
            credited with what later decisions recovered. Needs per-decision rewards.
        awr_prior: What AWR's policy stays close to: ``"logger"`` (the default; the classic
            AWR target ``mu(a|s) exp(A / beta)``, ``mu`` the policy that wrote the logs) or
            ``"init"`` (the model it starts from: each weight is multiplied by
            ``pi_0(a|s) / mu(a|s)``, the starting policy's probability of the logged action
            over the logger's, so the target becomes ``pi_0(a|s) exp(A / beta)``). With an
            exploring logger, ``"logger"`` pulls the policy towards the exploration's
            uniform share; ``"init"`` keeps what the starting policy knew and moves only
            where the advantages say so. Needs the logged propensities and a starting model.
    """

    method: str = "bc"
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    value_coef: float = 0.5
    awr_beta: float = 1.0
    awr_max_weight: float = 20.0
    critic_epochs: int = 2
    awr_lambda: float = 1.0
    awr_prior: str = "logger"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise OfflineLearningError(
                f"method={self.method!r} is unknown; expected 'bc' (behaviour cloning weighted "
                "by feedback) or 'awr' (advantage-weighted regression)."
            )
        if self.awr_prior not in AWR_PRIORS:
            raise OfflineLearningError(
                f"awr_prior={self.awr_prior!r} is unknown; expected 'logger' (stay close to the "
                "policy that wrote the logs) or 'init' (stay close to the starting model)."
            )
        check_ranges(
            "offline.",
            self,
            {
                "epochs": (
                    is_integer(self.epochs) and self.epochs >= 0,
                    "an integer >= 0 (0: no policy passes, e.g. only the probe refit)",
                ),
                "batch_size": (
                    is_integer(self.batch_size) and self.batch_size >= 1,
                    "an integer >= 1",
                ),
                "learning_rate": (
                    is_number(self.learning_rate) and self.learning_rate > 0,
                    "a number > 0",
                ),
                "value_coef": (
                    is_number(self.value_coef) and self.value_coef >= 0,
                    "a number >= 0",
                ),
                "awr_beta": (is_number(self.awr_beta) and self.awr_beta > 0, "a number > 0"),
                "awr_max_weight": (
                    is_number(self.awr_max_weight) and self.awr_max_weight > 0,
                    "a number > 0",
                ),
                "critic_epochs": (
                    is_integer(self.critic_epochs) and self.critic_epochs >= 1,
                    "an integer >= 1",
                ),
                "awr_lambda": (
                    is_number(self.awr_lambda) and 0 <= self.awr_lambda <= 1,
                    "a number in [0, 1]",
                ),
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


def advantage_weights(
    returns: np.ndarray, values: np.ndarray, *, beta: float, max_weight: float
) -> np.ndarray:
    """AWR's weight of each decision: ``min(exp((G - V) / beta), max_weight)``.

    Args:
        returns: ``[N]`` Monte-Carlo returns ``G`` from each state.
        values: ``[N]`` the critic's values ``V`` of the states (same units).
        beta: The temperature (> 0).
        max_weight: The cap (> 0).

    Returns:
        ``[N]`` float64 weights in ``(0, max_weight]``.
    """
    advantages = np.asarray(returns, dtype=np.float64) - np.asarray(values, dtype=np.float64)
    # exp of the capped exponent: the same weights without overflow for large advantages.
    return np.exp(np.minimum(advantages / float(beta), math.log(float(max_weight))))


def lambda_returns(demonstrations: Any, values: np.ndarray, lam: float) -> np.ndarray:
    """Lambda-returns ``G^lambda_t = V(s_t) + sum_k (gamma lambda)^k delta_{t+k}`` per decision.

    ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)``, with ``V`` 0 after an episode's last
    decision (never bootstrapped, as the Monte-Carlo returns). ``lam=1`` gives the Monte-Carlo
    returns themselves, ``lam=0`` the one-step targets ``r_t + gamma V(s_{t+1})``.

    Args:
        demonstrations: Decisions with ``rewards``, ``next_index`` and ``gamma``
            (:func:`rlagent.datasets.logged_decisions` records them).
        values: ``[N]`` the critic's values of the decisions' states.
        lam: Lambda, in ``[0, 1]``.

    Returns:
        ``[N]`` float64 lambda-returns.

    Raises:
        OfflineLearningError: The decisions hold no rewards or episode structure.
    """
    rewards, following = demonstrations.rewards, demonstrations.next_index
    gamma = demonstrations.gamma
    if rewards is None or following is None or gamma is None:
        raise OfflineLearningError(
            "awr_lambda < 1 needs each decision's reward and its episode's next decision; "
            "these decisions hold only returns: build them with "
            "rlagent.datasets.logged_decisions, or use awr_lambda=1."
        )
    values = np.asarray(values, dtype=np.float64)
    advantages = np.zeros(len(values))
    for i in range(len(values) - 1, -1, -1):
        j = int(following[i])
        later = values[j] if j >= 0 else 0.0
        advantages[i] = float(rewards[i]) + gamma * later - values[i]
        if j >= 0:
            advantages[i] += gamma * lam * advantages[j]
    return advantages + values


def logged_action_probabilities(
    policy: nn.Module, demonstrations: Demonstrations, batch_size: int = _SCORE_BATCH
) -> np.ndarray:
    """``[N]`` the policy's probability of each logged action (evaluation mode)."""

    def probability(observations: Any, actions: torch.Tensor) -> torch.Tensor:
        distribution = policy.get_distribution(observations)
        return torch.exp(distribution.log_prob(_actions_for(policy, actions)).double())

    return _per_decision(policy, demonstrations, probability, batch_size)


def prior_ratios(
    demonstrations: Demonstrations, start_probabilities: np.ndarray, max_ratio: float
) -> np.ndarray:
    """``min(pi_0(a|s) / mu(a|s), max_ratio)`` per logged decision (AWR's ``awr_prior="init"``).

    Raises:
        OfflineLearningError: The decisions hold no logged propensities.
    """
    mu = demonstrations.propensities
    if mu is None:
        raise OfflineLearningError(
            "awr_prior='init' needs the logger's probability of each logged action; these "
            "decisions hold none: build them with rlagent.datasets.logged_decisions from a "
            "dataset with propensities."
        )
    mu = np.clip(np.asarray(mu, dtype=np.float64), 1e-12, None)
    return np.minimum(np.asarray(start_probabilities, dtype=np.float64) / mu, float(max_ratio))


def awr_targets(demonstrations: Any, values: np.ndarray, lam: float) -> np.ndarray:
    """What AWR compares with ``V``: Monte-Carlo returns (``lam=1``) or lambda-returns."""
    if lam >= 1.0:
        return np.asarray(demonstrations.returns, dtype=np.float64)
    return lambda_returns(demonstrations, values, lam)


def predicted_values(
    policy: nn.Module, demonstrations: Demonstrations, batch_size: int = _SCORE_BATCH
) -> np.ndarray:
    """The critic's values ``[N]`` of every state of ``demonstrations`` (evaluation mode)."""

    def value(observations: Any, _: torch.Tensor) -> torch.Tensor:
        return policy.predict_values(observations).flatten()

    return _per_decision(policy, demonstrations, value, batch_size)


@torch.no_grad()
def _per_decision(
    policy: nn.Module,
    demonstrations: Demonstrations,
    compute: Any,
    batch_size: int,
) -> np.ndarray:
    """``[N]`` float64: ``compute(observations, actions)`` over minibatches, evaluation mode."""
    training = policy.training
    policy.set_training_mode(False)
    out = np.zeros(len(demonstrations))
    for index in demonstrations.minibatches(batch_size):
        observations, actions, _ = demonstrations.batch(index, policy.device)
        out[index] = compute(observations, actions).double().cpu().numpy()
    policy.set_training_mode(training)
    return out


@dataclass(frozen=True)
class OfflineScores:
    """How a policy fits logged decisions (evaluation mode, no noise).

    Attributes:
        agreement: Share of decisions whose logged action is the policy's most likely one (a
            slate counts only when every position matches).
        weighted_agreement: The same, each decision counted with its weight.
        weighted_loss: ``sum_i w_i * -log pi(a_i | s_i) / sum_i w_i`` over the decisions whose
            action the mask allows.
        value_loss: Mean squared error of the critic to the returns.
    """

    agreement: float
    weighted_agreement: float
    weighted_loss: float
    value_loss: float

    def to_dict(self) -> dict[str, float]:
        """A plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


@torch.no_grad()
def offline_scores(
    policy: nn.Module,
    demonstrations: Demonstrations,
    weights: np.ndarray | None = None,
    batch_size: int = _SCORE_BATCH,
) -> OfflineScores:
    """Score ``policy`` on logged decisions, each with its weight (``None``: 1 each).

    Returns:
        The :class:`OfflineScores` (all 0.0 for no decisions).
    """
    n = len(demonstrations)
    if not n:
        return OfflineScores(0.0, 0.0, 0.0, 0.0)
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    training = policy.training
    policy.set_training_mode(False)
    hits, nll, squared = np.zeros(n), np.zeros(n), np.zeros(n)
    for index in demonstrations.minibatches(batch_size):
        observations, actions, returns = demonstrations.batch(index, policy.device)
        distribution = policy.get_distribution(observations)
        chosen = distribution.get_actions(deterministic=True).reshape(actions.shape)
        same = chosen.to(actions.dtype) == actions
        if same.dim() > 1:
            same = same.flatten(1).all(dim=1)
        hits[index] = same.float().cpu().numpy()
        nll[index] = -distribution.log_prob(_actions_for(policy, actions)).float().cpu().numpy()
        values = policy.predict_values(observations).flatten()
        squared[index] = ((values - returns.float()) ** 2).cpu().numpy()
    policy.set_training_mode(training)
    counted = demonstrations.allowed & (weights > 0)
    total = float(weights.sum())
    return OfflineScores(
        agreement=float(hits.mean()),
        weighted_agreement=float((weights * hits).sum() / total) if total > 0 else 0.0,
        weighted_loss=float(
            (weights[counted] * nll[counted]).sum() / max(weights[counted].sum(), 1e-12)
        )
        if counted.any()
        else 0.0,
        value_loss=float(squared.mean()),
    )


def fit_offline(
    model: Any,
    demonstrations: Demonstrations,
    config: OfflineConfig,
    *,
    weights: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    seed: int = 0,
    logger: Any = None,
) -> list[dict[str, float]]:
    """Train ``model``'s policy and critic on logged decisions (see the module docstring).

    Args:
        model: A text agent (:func:`rlagent.agents.make_ppo` or :func:`load_model`).
        demonstrations: The logged decisions as model inputs, with their returns in the
            model's reward units.
        config: The method and its settings.
        weights: ``"bc"``: ``[N]`` non-negative weight per decision (``None``: 1 each, plain
            behaviour cloning); ``"awr"`` computes its own and refuses them.
        prior: ``"awr"``: ``[N]`` factors the advantage weights are multiplied by (then
            capped at ``awr_max_weight``), e.g. :func:`prior_ratios` for
            ``awr_prior="init"``; ``None``: none.
        seed: Seed of the minibatch shuffles.
        logger: An SB3 ``Logger`` for ``offline/*`` curves (one point per epoch).

    Returns:
        Per epoch: ``policy_loss`` and ``value_loss`` (means over the minibatches), and for
        ``"awr"`` the ``mean_weight`` and ``clipped_share`` of the advantage weights.

    Raises:
        OfflineLearningError: No decisions, weights of the wrong shape or negative, or
            weights given to ``"awr"``.
    """
    n = len(demonstrations)
    if not n:
        raise OfflineLearningError(
            "No logged decisions to learn from; the dataset's training share holds none."
        )
    if weights is not None:
        if config.method == "awr":
            raise OfflineLearningError(
                "method='awr' weighs decisions by their advantages; pass weights=None."
            )
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (n,) or not np.isfinite(weights).all() or (weights < 0).any():
            raise OfflineLearningError(
                f"weights must be {n} finite non-negative numbers, one per decision; got an "
                f"array of shape {weights.shape}."
            )
    policy = model.policy
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    rng = np.random.default_rng(seed)
    common = dict(batch_size=config.batch_size, rng=rng, max_grad_norm=model.max_grad_norm)
    history = []
    for epoch in range(config.epochs):
        if config.method == "bc":
            losses = supervised_epoch(
                policy,
                demonstrations,
                optimizer,
                weights=weights,
                value_coef=config.value_coef,
                **common,
            )
        else:
            for _ in range(config.critic_epochs):
                critic = supervised_epoch(
                    policy, demonstrations, optimizer, policy_coef=0.0, value_coef=1.0, **common
                )
            values = predicted_values(policy, demonstrations)
            awr = advantage_weights(
                awr_targets(demonstrations, values, config.awr_lambda),
                values,
                beta=config.awr_beta,
                max_weight=config.awr_max_weight,
            )
            if prior is not None:
                awr = np.minimum(awr * prior, config.awr_max_weight)
            actor = supervised_epoch(
                policy, demonstrations, optimizer, weights=awr, value_coef=0.0, **common
            )
            losses = {
                "policy_loss": actor["policy_loss"],
                "value_loss": critic["value_loss"],
                "mean_weight": float(awr.mean()),
                "clipped_share": float((awr >= config.awr_max_weight * (1 - 1e-9)).mean()),
            }
        history.append({key: float(value) for key, value in losses.items()})
        if logger is not None:
            for key, value in history[-1].items():
                logger.record(f"offline/{key}", value)
            logger.dump(epoch + 1)
    policy.set_training_mode(False)
    return history
