"""Reward configuration of the customer-service environment."""

from __future__ import annotations

import math
from dataclasses import dataclass

from envs.customer_service.errors import CustomerServiceConfigError

__all__ = ["RewardConfig"]


@dataclass(frozen=True)
class RewardConfig:
    """Rewards of :class:`CustomerServiceEnv`; every step pays ``turn`` plus its outcome's term.

    Attributes:
        success: Bonus for resolving the customer's group, multiplied by
            ``mood_scale[mood]`` for the customer's mood at that moment.
        mood_scale: Multipliers of ``success`` for a calm, frustrated and angry customer.
        turn: Reward of every agent turn (a cost, so negative).
        wrong_resolution: Added when the agent resolves the wrong group.
        escalate: Added when the agent escalates (the case is resolved by a specialist).
        abandon: Added when the customer leaves (patience exhausted, or angry and wronged).
    """

    success: float = 20.0
    mood_scale: tuple[float, float, float] = (1.0, 0.75, 0.5)
    turn: float = -1.0
    wrong_resolution: float = -4.0
    escalate: float = -5.0
    abandon: float = -10.0

    def __post_init__(self) -> None:
        if len(self.mood_scale) != 3:
            raise CustomerServiceConfigError(
                f"RewardConfig.mood_scale has {len(self.mood_scale)} entries; expected 3 "
                "(calm, frustrated, angry), e.g. mood_scale=(1.0, 0.75, 0.5)."
            )
        values = (self.success, self.turn, self.wrong_resolution, self.escalate, self.abandon)
        if not all(math.isfinite(v) for v in (*values, *self.mood_scale)):
            raise CustomerServiceConfigError(
                f"RewardConfig values must be finite numbers; received {self!r}."
            )

    def step_bounds(self) -> tuple[float, float]:
        """Smallest and largest reward a single step can return.

        A step pays ``turn`` plus one of: nothing, ``wrong_resolution``,
        ``wrong_resolution + abandon`` (an angry customer leaves after a wrong resolution),
        ``abandon``, ``escalate`` or ``success * mood_scale[m]``.
        """
        extras = [
            0.0,
            self.wrong_resolution,
            self.wrong_resolution + self.abandon,
            self.abandon,
            self.escalate,
            *(self.success * s for s in self.mood_scale),
        ]
        return self.turn + min(extras), self.turn + max(extras)

    def return_bounds(self, max_turns: int) -> tuple[float, float]:
        """Bounds on an episode's return when it lasts at most ``max_turns`` steps.

        Every step but the last pays ``turn`` plus nothing or ``wrong_resolution``; the last
        step is bounded by :meth:`step_bounds`.
        """
        low, high = self.step_bounds()
        others = max_turns - 1
        worst = self.turn + min(0.0, self.wrong_resolution)
        best = self.turn + max(0.0, self.wrong_resolution)
        return low + others * min(0.0, worst), high + others * max(0.0, best)
