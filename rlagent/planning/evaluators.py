"""Leaf evaluators that need no learned policy: random rollouts and a constant value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlagent.planning.model import Model, PlanningConfigError

__all__ = ["ConstantEvaluator", "RandomRolloutEvaluator"]


class RandomRolloutEvaluator:
    """Value of a leaf = discounted return of uniformly random actions until the episode ends.

    Args:
        model: The planning model to roll out in.
        discount: Discount per step (use the search's ``config.discount``).
        num_rollouts: Rollouts averaged per leaf.
        max_steps: Stop a rollout after this many steps (``None``: run until ``done``).

    Priors are uniform (``None``).
    """

    def __init__(
        self,
        model: Model,
        *,
        discount: float = 1.0,
        num_rollouts: int = 1,
        max_steps: int | None = None,
    ) -> None:
        if not isinstance(num_rollouts, int) or num_rollouts < 1:
            raise PlanningConfigError(
                f"RandomRolloutEvaluator: num_rollouts={num_rollouts!r}, expected an int >= 1."
            )
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise PlanningConfigError(
                f"RandomRolloutEvaluator: max_steps={max_steps!r}, expected None or an int >= 1; "
                "pass max_steps=None to roll out until the episode ends."
            )
        self.model = model
        self.discount = float(discount)
        self.num_rollouts = num_rollouts
        self.max_steps = max_steps

    def evaluate(self, state: Any, rng: np.random.Generator) -> tuple[None, float]:
        """Average return of ``num_rollouts`` random rollouts from ``state``."""
        actions = self.model.actions
        step = self.model.step
        gamma = self.discount
        max_steps = self.max_steps
        random = rng.random
        total = 0.0
        for _ in range(self.num_rollouts):
            s = state
            g = 0.0
            scale = 1.0
            t = 0
            while True:
                legal = actions(s)
                s, r, done = step(s, legal[int(random() * len(legal))], rng)
                g += scale * r
                scale *= gamma
                t += 1
                if done or (max_steps is not None and t >= max_steps):
                    break
            total += g
        return None, total / self.num_rollouts

    def evaluate_batch(
        self, states: Sequence[Any], rng: np.random.Generator
    ) -> list[tuple[None, float]]:
        """:meth:`evaluate` on each state in turn."""
        return [self.evaluate(s, rng) for s in states]


class ConstantEvaluator:
    """Value of every leaf = ``value`` (default 0), uniform priors: plain tree search.

    Args:
        value: The value returned for every leaf.
    """

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(value)

    def evaluate(self, state: Any, rng: np.random.Generator) -> tuple[None, float]:
        """Return ``(None, value)``."""
        return None, self.value

    def evaluate_batch(
        self, states: Sequence[Any], rng: np.random.Generator
    ) -> list[tuple[None, float]]:
        """Return ``(None, value)`` for each state."""
        return [(None, self.value)] * len(states)
