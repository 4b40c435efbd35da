"""A distribution over slates: ordered choices of distinct candidates, from one score each.

A slate of ``k`` distinct positions out of ``n`` candidates is drawn like a ranked list
(Plackett-Luce): the first position from ``softmax(scores)``, each next one from the softmax
over the candidates not yet chosen. One score per candidate serves every slot, so a policy
learns a single scorer instead of ``k`` independent heads, and a slate never repeats an item.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.distributions import Distribution
from torch import nn

__all__ = ["SlateDistribution", "SlateProbabilities"]

#: Largest number of ordered slates :attr:`SlateDistribution.distribution` enumerates.
MAX_ENUMERATED_SLATES = 1_000_000


class SlateProbabilities:
    """Joint probabilities of every ordered slate, as a planner reads ``distribution.probs``.

    ``probs`` has shape ``[batch, n ** k]``: slate ``(i, j, ...)`` is at the row-major index of
    ``MultiDiscrete([n] * k)`` (``n * i + j`` for two slots); slates that repeat a position
    have probability 0.
    """

    def __init__(self, logits: torch.Tensor, slots: int) -> None:
        self._logits = logits
        self._slots = slots

    @property
    def probs(self) -> torch.Tensor:
        """``[batch, n ** k]`` probabilities summing to 1 per row."""
        batch, n = self._logits.shape
        if n**self._slots > MAX_ENUMERATED_SLATES:
            raise ValueError(
                f"{n} candidates in slates of {self._slots} make {n**self._slots} ordered slates, "
                f"more than {MAX_ENUMERATED_SLATES} to enumerate; plan with a smaller slate."
            )
        # joint[b, prefix] and used[b, prefix, n] grow one slot at a time.
        joint = torch.ones(batch, 1, dtype=self._logits.dtype, device=self._logits.device)
        used = torch.zeros(batch, 1, n, dtype=torch.bool, device=self._logits.device)
        eye = torch.eye(n, dtype=torch.bool, device=self._logits.device)
        for _ in range(self._slots):
            logits = self._logits.unsqueeze(1).masked_fill(used, float("-inf"))
            step = torch.softmax(logits, dim=-1).nan_to_num(0.0)
            joint = (joint.unsqueeze(-1) * step).reshape(batch, -1)
            used = (used.unsqueeze(2) | eye).reshape(batch, -1, n)
        return joint


class SlateDistribution(Distribution):
    """Ordered slates of ``slots`` distinct positions out of ``n`` candidate scores.

    Args:
        n: Number of candidates (positions ``0..n-1``).
        slots: Slate size ``k`` (``1 <= k <= n``).

    Raises:
        ValueError: When ``slots`` is not in ``[1, n]``.
    """

    def __init__(self, n: int, slots: int) -> None:
        super().__init__()
        if not 1 <= int(slots) <= int(n):
            raise ValueError(
                f"SlateDistribution needs 1 <= slots <= n, got slots={slots}, n={n}; a slate "
                "holds distinct candidates."
            )
        self.n = int(n)
        self.slots = int(slots)
        self.logits: torch.Tensor | None = None
        self._last_actions: torch.Tensor | None = None

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """A linear layer from a latent vector to ``n`` candidate scores."""
        return nn.Linear(latent_dim, self.n)

    def proba_distribution(self, action_logits: torch.Tensor) -> SlateDistribution:
        """Set the candidate scores, ``[batch, n]``."""
        if action_logits.ndim != 2 or action_logits.shape[1] != self.n:
            raise ValueError(
                f"SlateDistribution expects scores of shape [batch, {self.n}], got "
                f"{tuple(action_logits.shape)}."
            )
        self.logits = action_logits
        self._last_actions = None
        return self

    @property
    def distribution(self) -> SlateProbabilities:
        """Joint slate probabilities (see :class:`SlateProbabilities`)."""
        return SlateProbabilities(self._scores(), self.slots)

    def _scores(self) -> torch.Tensor:
        if self.logits is None:
            raise RuntimeError("SlateDistribution has no scores; call proba_distribution first.")
        return self.logits

    def _slot_log_probs(self, actions: torch.Tensor) -> list[torch.Tensor]:
        """Per-slot log-softmax over the candidates still available, ``k x [batch, n]``."""
        logits = self._scores()
        used = torch.zeros_like(logits, dtype=torch.bool)
        out = []
        for slot in range(self.slots):
            out.append(torch.log_softmax(logits.masked_fill(used, float("-inf")), dim=-1))
            used = used.scatter(1, actions[:, slot : slot + 1], True)
        return out

    def _as_positions(self, actions: torch.Tensor) -> torch.Tensor:
        actions = actions.reshape(-1, self.slots).long()
        if actions.numel() and (actions.min() < 0 or actions.max() >= self.n):
            raise ValueError(
                f"slate actions must hold positions in 0..{self.n - 1}, got values from "
                f"{int(actions.min())} to {int(actions.max())}."
            )
        return actions

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability of each ordered slate, ``[batch]``.

        A slate that repeats a position has probability 0 (log-probability ``-inf``); the
        distribution never samples one.
        """
        actions = self._as_positions(actions)
        self._last_actions = actions
        per_slot = self._slot_log_probs(actions)
        return sum(lp.gather(1, actions[:, s : s + 1]).squeeze(1) for s, lp in enumerate(per_slot))

    def entropy(self) -> torch.Tensor:
        """Entropy by the chain rule along one slate, ``[batch]``.

        The first slot's entropy is exact; each later slot adds the entropy of its choice given
        the earlier positions of the slate last passed to :meth:`log_prob` (in PPO: the rollout's
        slate, a sample of the policy), else of the most likely slate. For one slot this is the
        exact entropy.
        """
        actions = self._last_actions if self._last_actions is not None else self.mode()
        total = torch.zeros(self._scores().shape[0], device=self._scores().device)
        for lp in self._slot_log_probs(actions):
            # Chosen positions have log-probability -inf; zero them before the product so that
            # neither the value nor its gradient becomes 0 * inf.
            finite = lp.masked_fill(torch.isinf(lp), 0.0)
            total = total - (lp.exp() * finite).sum(dim=1)
        return total

    def sample(self) -> torch.Tensor:
        """Slates drawn without replacement (Gumbel top-k), ``[batch, k]``."""
        logits = self._scores().detach()
        uniform = torch.rand_like(logits).clamp_(min=1e-20)
        gumbel = -torch.log((-torch.log(uniform)).clamp(min=1e-20))
        return torch.topk(logits + gumbel, self.slots, dim=1).indices

    def mode(self) -> torch.Tensor:
        """The ``k`` highest-scoring positions, best first, ``[batch, k]``."""
        return torch.topk(self._scores().detach(), self.slots, dim=1).indices

    def actions_from_params(self, action_logits: torch.Tensor, deterministic: bool = False) -> Any:
        """Set the scores and return slates."""
        self.proba_distribution(action_logits)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, action_logits: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Sample slates from these scores and return them with their log-probabilities."""
        actions = self.actions_from_params(action_logits)
        return actions, self.log_prob(actions)
