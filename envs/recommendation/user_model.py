"""The simulated user of a recommendation session.

The user follows RecSim interest-evolution dynamics, with optional fatigue and boredom.

With ``dynamics="recsim"`` the user follows RecSim's ``interest_evolution`` environment
(google-research/recsim, Apache-2.0) with its default parameters:

* Interests ``x`` in ``[-1, 1]^T`` start uniform at random.
* Choice (multinomial proportional with a no-click option): item ``i`` of the slate is clicked
  with probability ``(x[topic_i] + 1) / (sum_j (x[topic_j] + 1) + 2)``, and nothing is clicked
  with probability ``2 / (...)`` (no-click mass 1, min normaliser -1). At most one click a step.
* A click watches ``min(budget, 4)`` minutes (the reward) and changes the budget by
  ``-watch + (0.9 / 3.4) * watch * quality``; no click costs 0.5 minutes. The session ends when
  the budget (200 minutes at the start) reaches 0.
* After a click on topic ``t`` the interest moves by ``delta = (0.3 - 0.3 |x_t|) * (1 - x_t)``:
  ``x_t + delta`` with probability ``(x_t + 1) / 2``, else ``x_t - delta``, clipped to [-1, 1].

Fatigue and boredom (both off for ``"recsim"``, on in the ``"bored"`` preset) add what KuaiSim
calls temper: each click on topic ``t`` adds 1 to a per-topic fatigue count that decays by
``fatigue_decay`` every step, and the appeal used for choice is
``max(-1, x_t - fatigue * count_t)``; after each step without a click the user leaves with
probability ``boredom``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UserConfig", "DYNAMICS", "SessionUser", "RecommendationConfigError"]


class RecommendationConfigError(ValueError):
    """A recommendation environment setting is invalid."""


@dataclass(frozen=True)
class UserConfig:
    """Parameters of the simulated user (defaults: RecSim interest evolution).

    Attributes:
        budget: Session time budget at the start, minutes.
        item_minutes: Length of every item, minutes (the watch time of a click).
        no_click_cost: Budget lost by a step without a click, minutes.
        no_click_mass: Choice score of the no-click option before normalisation.
        min_normalizer: Offset subtracted from every choice score (RecSim's ``min_normalizer``).
        refund_rate: Budget refunded per watched minute per unit of quality (RecSim:
            0.9 / 3.4).
        interest_step: Largest interest step (RecSim's alpha y-intercept, 0.3).
        fatigue: Appeal lost per unit of topic fatigue; 0 disables fatigue.
        fatigue_decay: Factor applied to every topic's fatigue count each step, in [0, 1].
        boredom: Probability of leaving after a step without a click, in [0, 1].
    """

    budget: float = 200.0
    item_minutes: float = 4.0
    no_click_cost: float = 0.5
    no_click_mass: float = 1.0
    min_normalizer: float = -1.0
    refund_rate: float = 0.9 / 3.4
    interest_step: float = 0.3
    fatigue: float = 0.0
    fatigue_decay: float = 0.8
    boredom: float = 0.0

    def __post_init__(self) -> None:
        for name in ("budget", "item_minutes"):
            if not getattr(self, name) > 0:
                raise RecommendationConfigError(
                    f"{name}={getattr(self, name)} must be > 0 (minutes)"
                )
        if self.no_click_cost < 0 or self.fatigue < 0:
            raise RecommendationConfigError(
                f"no_click_cost={self.no_click_cost} and fatigue={self.fatigue} must be >= 0"
            )
        for name in ("fatigue_decay", "boredom"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise RecommendationConfigError(f"{name}={value} is outside [0, 1]")
        if self.no_click_mass - self.min_normalizer <= 0 or self.min_normalizer > -1.0:
            raise RecommendationConfigError(
                f"no_click_mass={self.no_click_mass}, min_normalizer={self.min_normalizer}: "
                "need min_normalizer <= -1 and no_click_mass > min_normalizer so that every "
                "choice score is >= 0"
            )


#: Named dynamics presets: ``dynamics=NAME`` starts from these values.
DYNAMICS: dict[str, UserConfig] = {
    "recsim": UserConfig(),
    "bored": UserConfig(fatigue=0.5, fatigue_decay=0.8, boredom=0.02),
}


class SessionUser:
    """Mutable state of one simulated user, stepped by :meth:`respond`.

    Attributes:
        interests: Per-topic interest in [-1, 1] (hidden).
        budget: Remaining session time, minutes (hidden).
        fatigue: Per-topic fatigue counts (observable: a function of the click history); empty
            when fatigue is disabled.
        left: Whether the user left through boredom.
    """

    __slots__ = ("config", "interests", "budget", "fatigue", "left", "_offset", "_w0")

    def __init__(self, config: UserConfig) -> None:
        self.config = config
        self.interests: list[float] = []
        self.budget = config.budget
        self.fatigue: list[float] = []
        self.left = False
        self._offset = -config.min_normalizer
        self._w0 = config.no_click_mass - config.min_normalizer

    def start(self, interests: list[float]) -> None:
        """Begin a session with these interests and a full budget."""
        self.interests = interests
        self.budget = self.config.budget
        self.fatigue = [0.0] * len(interests) if self.config.fatigue > 0 else []
        self.left = False

    @property
    def done(self) -> bool:
        """Whether the session is over (budget spent or the user left)."""
        return self.budget <= 0.0 or self.left

    def appeal(self, topic: int) -> float:
        """Choice score of an item of ``topic`` (>= 0)."""
        x = self.interests[topic]
        if self.fatigue:
            x = max(-1.0, x - self.config.fatigue * self.fatigue[topic])
        return x + self._offset

    def click_probabilities(self, topics: list[int]) -> list[float]:
        """Probability of clicking each slate position, then of no click (last entry)."""
        weights = [self.appeal(t) for t in topics]
        total = sum(weights) + self._w0
        return [w / total for w in weights] + [self._w0 / total]

    def respond(
        self,
        topics: list[int],
        qualities: list[float],
        u_choice: float,
        u_interest: float,
        u_leave: float,
    ) -> tuple[int, float]:
        """Show a slate, sample the response and update the user.

        Args:
            topics: Topic of each slate item (distinct items).
            qualities: Hidden quality of each slate item.
            u_choice: Uniform draw for the choice.
            u_interest: Uniform draw for the interest direction.
            u_leave: Uniform draw for leaving through boredom.

        Returns:
            (clicked slate position or -1, watch time in minutes).
        """
        config = self.config
        weights = [self.appeal(t) for t in topics]
        threshold = u_choice * (sum(weights) + self._w0)
        clicked = -1
        acc = 0.0
        for pos, w in enumerate(weights):
            acc += w
            if threshold < acc:
                clicked = pos
                break
        fatigue = self.fatigue
        if fatigue:
            decay = config.fatigue_decay
            for t in range(len(fatigue)):
                fatigue[t] *= decay
        if clicked < 0:
            self.budget -= config.no_click_cost
            if u_leave < config.boredom:
                self.left = True
            return -1, 0.0
        topic = topics[clicked]
        x = self.interests[topic]
        delta = config.interest_step * (1.0 - abs(x)) * (1.0 - x)
        x = x + delta if u_interest < (x + 1.0) / 2.0 else x - delta
        self.interests[topic] = min(1.0, max(-1.0, x))
        watch = min(max(self.budget, 0.0), config.item_minutes)
        self.budget += watch * (config.refund_rate * qualities[clicked] - 1.0)
        if fatigue:
            fatigue[topic] += 1.0
        return clicked, watch
