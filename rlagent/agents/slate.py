"""A distribution over slates: ordered choices of distinct candidates, from one score each.

A slate of ``k`` distinct positions out of ``n`` candidates is drawn like a ranked list
(Plackett-Luce): the first position from ``softmax(scores)``, each next one from the softmax
over the candidates not yet chosen. One score per candidate serves every slot, so a policy
learns a single scorer instead of ``k`` independent heads, and a slate never repeats an item.

With ``stop=True`` a slate may also end early: after the first slot, each slot chooses among
the candidates left and a *stop* option with its own score (the last column of the scores).
A stopped slate repeats its first position in every remaining slot, which an environment that
shows a repeated position once (as RecommendationEnv does) reads as a shorter slate: one good
item alone instead of one good and one poor item that would take some of its clicks.
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

    def __init__(self, logits: torch.Tensor, slots: int, stop: bool = False) -> None:
        self._logits = logits
        self._slots = slots
        self._stop = stop

    @property
    def probs(self) -> torch.Tensor:
        """``[batch, n ** k]`` probabilities summing to 1 per row."""
        batch, n = self._logits.shape
        if self._stop:
            n -= 1
        if n**self._slots > MAX_ENUMERATED_SLATES:
            raise ValueError(
                f"{n} candidates in slates of {self._slots} make {n**self._slots} ordered slates, "
                f"more than {MAX_ENUMERATED_SLATES} to enumerate; plan with a smaller slate."
            )
        if self._stop:
            return self._probs_with_stop(n)
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

    def _probs_with_stop(self, n: int) -> torch.Tensor:
        scores, stop = self._logits[:, :n], self._logits[:, n:]
        batch = scores.shape[0]
        device = scores.device
        eye = torch.eye(n, dtype=torch.bool, device=device)
        joint = torch.softmax(scores, dim=-1)  # [batch, n]: one prefix per first position
        used = eye.unsqueeze(0).expand(batch, n, n)
        first = torch.arange(n, device=device)  # first position of each prefix
        stopped = torch.zeros(n, dtype=torch.bool, device=device)
        for _ in range(1, self._slots):
            prefixes = joint.shape[1]
            logits = torch.cat(
                [
                    scores.unsqueeze(1).masked_fill(used, float("-inf")),
                    stop.unsqueeze(1).expand(batch, prefixes, 1),
                ],
                dim=-1,
            )
            step = torch.softmax(logits, dim=-1)
            # A running prefix extends with a new candidate, or stops by repeating its first
            # position (whose candidate probability is 0, so the two never collide).
            repeat = torch.nn.functional.one_hot(first, n).to(step.dtype)  # [prefixes, n]
            ext = step[..., :n] + step[..., n:] * repeat
            ext = torch.where(stopped[None, :, None], repeat.expand_as(ext), ext)
            joint = (joint.unsqueeze(-1) * ext).reshape(batch, -1)
            used = (used.unsqueeze(2) | eye).reshape(batch, -1, n)
            new_first = first.repeat_interleave(n)
            new_stopped = stopped.repeat_interleave(n) | (
                torch.arange(n, device=device).repeat(prefixes) == new_first
            )
            first, stopped = new_first, new_stopped
        return joint


class SlateDistribution(Distribution):
    """Ordered slates of ``slots`` distinct positions out of ``n`` candidate scores.

    Args:
        n: Number of candidates (positions ``0..n-1``).
        slots: Slate size ``k`` (``1 <= k <= n``).
        stop: Let a slate end after any slot but the first (scores then have ``n + 1``
            columns, the last one scoring *stop*); a stopped slate repeats its first position.

    Raises:
        ValueError: When ``slots`` is not in ``[1, n]``.
    """

    def __init__(self, n: int, slots: int, stop: bool = False) -> None:
        super().__init__()
        if not 1 <= int(slots) <= int(n):
            raise ValueError(
                f"SlateDistribution needs 1 <= slots <= n, got slots={slots}, n={n}; a slate "
                "holds distinct candidates."
            )
        self.n = int(n)
        self.slots = int(slots)
        self.stop = bool(stop)
        self.logits: torch.Tensor | None = None
        self._last_actions: torch.Tensor | None = None

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """A linear layer from a latent vector to the ``n`` (``n + 1`` with stop) scores."""
        return nn.Linear(latent_dim, self.n + int(self.stop))

    def proba_distribution(self, action_logits: torch.Tensor) -> SlateDistribution:
        """Set the candidate scores, ``[batch, n]`` (``[batch, n + 1]`` with stop)."""
        width = self.n + int(self.stop)
        if action_logits.ndim != 2 or action_logits.shape[1] != width:
            raise ValueError(
                f"SlateDistribution expects scores of shape [batch, {width}], got "
                f"{tuple(action_logits.shape)}."
            )
        self.logits = action_logits
        self._last_actions = None
        return self

    @property
    def distribution(self) -> SlateProbabilities:
        """Joint slate probabilities (see :class:`SlateProbabilities`)."""
        return SlateProbabilities(self._scores(), self.slots, self.stop)

    def _scores(self) -> torch.Tensor:
        if self.logits is None:
            raise RuntimeError("SlateDistribution has no scores; call proba_distribution first.")
        return self.logits

    def _slot_log_probs(self, actions: torch.Tensor) -> list[torch.Tensor]:
        """Per-slot log-softmax over the candidates still available, ``k x [batch, n]``.

        With stop, each row has ``n + 1`` columns (the last: stop) and is all ``-inf`` but the
        stop column (log-probability 0) once the slate has stopped.
        """
        logits = self._scores()
        used = torch.zeros_like(logits, dtype=torch.bool)
        out = []
        if not self.stop:
            for slot in range(self.slots):
                out.append(torch.log_softmax(logits.masked_fill(used, float("-inf")), dim=-1))
                used = used.scatter(1, actions[:, slot : slot + 1], True)
            return out
        n = self.n
        used[:, n] = True  # the first slot cannot stop
        stopped = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
        done_row = torch.full_like(logits, float("-inf"))
        done_row[:, n] = 0.0
        for slot in range(self.slots):
            lp = torch.log_softmax(logits.masked_fill(used, float("-inf")), dim=-1)
            out.append(torch.where(stopped[:, None], done_row, lp))
            if slot == 0:
                used = used.clone()  # the mask of this slot is saved for the backward pass
                used[:, n] = False
            pos = actions[:, slot : slot + 1]
            stopped = stopped | (used[:, :n].gather(1, pos).squeeze(1) & (slot > 0))
            used = used.scatter(1, pos, True)
        return out

    def _choices(self, actions: torch.Tensor) -> torch.Tensor:
        """Column chosen at each slot, ``[batch, k]``: the position, or ``n`` for stop."""
        if not self.stop:
            return actions
        repeat = torch.zeros_like(actions, dtype=torch.bool)
        for slot in range(1, self.slots):
            earlier = (actions[:, :slot] == actions[:, slot : slot + 1]).any(dim=1)
            repeat[:, slot] = earlier | repeat[:, slot - 1]
        return torch.where(repeat, torch.full_like(actions, self.n), actions)

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
        distribution never samples one. With stop, a repeated position means the slate stopped
        there (the distribution samples stopped slates as repeats of the first position).
        """
        actions = self._as_positions(actions)
        self._last_actions = actions
        per_slot = self._slot_log_probs(actions)
        choices = self._choices(actions)
        return sum(lp.gather(1, choices[:, s : s + 1]).squeeze(1) for s, lp in enumerate(per_slot))

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
        """Slates drawn without replacement (Gumbel top-k), ``[batch, k]``.

        With stop, slot by slot: each slot draws from the softmax over the candidates left and
        stop (fresh Gumbel noise per slot), as :meth:`log_prob` scores it.
        """
        logits = self._scores().detach()
        if not self.stop:
            return torch.topk(logits + _gumbel(logits), self.slots, dim=1).indices
        n = self.n
        used = torch.zeros_like(logits, dtype=torch.bool)
        used[:, n] = True
        stopped = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
        slots = []
        for slot in range(self.slots):
            keys = (logits + _gumbel(logits)).masked_fill(used, float("-inf"))
            choice = keys.argmax(dim=1)
            stopped = stopped | (choice == n)
            position = torch.where(stopped, slots[0], choice) if slot else choice
            slots.append(position)
            used = used.scatter(1, position[:, None], True)
            used[:, n] = False
        return torch.stack(slots, dim=1)

    def mode(self) -> torch.Tensor:
        """The ``k`` highest-scoring positions, best first, ``[batch, k]``.

        With stop, the slate ends where the stop score beats every candidate left.
        """
        return self._ranked(self._scores().detach())

    def _ranked(self, keys: torch.Tensor) -> torch.Tensor:
        """Positions by decreasing key; with stop, cut where the stop key comes first."""
        if not self.stop:
            return torch.topk(keys, self.slots, dim=1).indices
        n = self.n
        top = torch.topk(keys[:, :n], self.slots, dim=1)
        # A later slot stops when the stop score beats the best candidate left.
        stopped = top.values < keys[:, n : n + 1]
        stopped[:, 0] = False
        stopped = stopped.cummax(dim=1).values
        first = top.indices[:, :1].expand_as(top.indices)
        return torch.where(stopped, first, top.indices)

    def actions_from_params(self, action_logits: torch.Tensor, deterministic: bool = False) -> Any:
        """Set the scores and return slates."""
        self.proba_distribution(action_logits)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, action_logits: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Sample slates from these scores and return them with their log-probabilities."""
        actions = self.actions_from_params(action_logits)
        return actions, self.log_prob(actions)


def _gumbel(like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise shaped like ``like``."""
    uniform = torch.rand_like(like).clamp_(min=1e-20)
    return -torch.log((-torch.log(uniform)).clamp(min=1e-20))
