"""Exploring service: decisions sampled from a known distribution, so that logs can teach.

A served agent answers with its most likely action by default, the action ``rlagent evaluate``
takes: every logged propensity is then 1, and off-policy evaluation can judge only a policy
that acts exactly like it (``rlagent ope`` warns of poor support). With :class:`Exploration`
the service samples each dialogue decision from a stated distribution and logs that whole
distribution, so the logs support other policies (``rlagent ope``) and show the outcomes of
actions the agent would not have taken (``rlagent learn``):

* ``epsilon=e``: epsilon-greedy around the most likely action,
  ``(1 - e) 1[a = mode] + e u(a)``, ``u`` uniform over the actions the session allows (the
  customer's rejected groups excluded), as ``rlagent collect --epsilon`` does;
* ``temperature=t``: the policy's own distribution ``softmax(logits / t)`` (masked actions
  stay at 0 for a model that reads action masks), as ``rlagent collect --temperature`` does.

Example:
    >>> from rlagent.serving import Exploration, build_app
    >>> app = build_app("runs/cs/model", exploration=Exploration(epsilon=0.1))  # doctest: +SKIP

On the command line: ``rlagent serve MODEL --epsilon 0.1`` (or ``--temperature 1.5``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rlagent.datasets.behaviour import epsilon_soft
from rlagent.serving.errors import ServingConfigError

__all__ = ["Exploration"]


@dataclass(frozen=True)
class Exploration:
    """How a service explores: exactly one of ``epsilon`` and ``temperature``.

    Attributes:
        epsilon: Share of decisions spread uniformly over the allowed actions, in ``(0, 1]``.
        temperature: Divides the policy's logits before sampling, ``> 0``; 1 samples the
            policy's own distribution.
        seed: Seeds the service's sampling generator.
    """

    epsilon: float | None = None
    temperature: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.epsilon is None) == (self.temperature is None):
            raise ServingConfigError(
                "Exploration needs exactly one of epsilon= (e.g. 0.1: epsilon-greedy around the "
                "most likely action) and temperature= (e.g. 1.0: sample the policy's own "
                f"distribution); got epsilon={self.epsilon!r}, temperature={self.temperature!r}."
            )
        if self.epsilon is not None and not _number_in(self.epsilon, 0.0, 1.0, low_open=True):
            raise ServingConfigError(
                f"epsilon={self.epsilon!r} must be a number in (0, 1], e.g. 0.1; without "
                "exploration, leave it out."
            )
        if self.temperature is not None and not _number_in(
            self.temperature, 0.0, math.inf, low_open=True
        ):
            raise ServingConfigError(
                f"temperature={self.temperature!r} must be a number > 0, e.g. 1.0 (the policy's "
                "own distribution) or 1.5 (flatter)."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ServingConfigError(f"seed={self.seed!r} must be an int.")

    def describe(self) -> dict[str, Any]:
        """The settings, for the interaction log."""
        return asdict(self)

    def distributions(
        self,
        logits: np.ndarray,
        modes: Sequence[int],
        allowed: Sequence[np.ndarray | None],
        *,
        model_reads_masks: bool,
    ) -> np.ndarray:
        """``[B, A]``: the distribution each decision is sampled from.

        Args:
            logits: ``[B, A]`` the policy's logits (masked entries already very negative for a
                model that reads action masks).
            modes: The most likely action of each row (the action without exploration).
            allowed: Each row's allowed actions as a bool ``[A]`` vector, or ``None`` for all.
            model_reads_masks: Whether the model reads action masks; tempered probabilities of
                masked actions are then set to 0.
        """
        if self.epsilon is not None:
            base = np.zeros_like(logits, dtype=np.float64)
            base[np.arange(len(modes)), np.asarray(modes, dtype=np.int64)] = 1.0
            return epsilon_soft(base, float(self.epsilon), allowed)
        scaled = np.asarray(logits, dtype=np.float64) / float(self.temperature)
        scaled -= scaled.max(axis=1, keepdims=True)
        probs = np.exp(scaled)
        if model_reads_masks:
            for row, mask in enumerate(allowed):
                if mask is not None:
                    probs[row] *= np.asarray(mask, dtype=np.float64)
        return probs / probs.sum(axis=1, keepdims=True)


def _number_in(value: Any, low: float, high: float, *, low_open: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return (value > low if low_open else value >= low) and value <= high
