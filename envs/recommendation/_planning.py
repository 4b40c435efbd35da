"""The recommendation env's planning and training support: states, beliefs, hidden features."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.recommendation.errors import ResetNeededError
from envs.recommendation.state import RecState
from envs.recommendation.user_model import RecommendationConfigError, SessionUser

__all__: list[str] = []


class _PlanningSupport:
    """State access, beliefs, hidden features and expected rewards for the recommendation env.

    A mixin of :class:`~envs.recommendation.RecommendationEnv`: it reads and restores the
    session attributes that the env's ``__init__``, ``reset`` and ``step`` keep (``user``,
    ``user_config``, ``catalog``, ``_candidates``, ``_log`` ...).
    """

    @property
    def candidate_items(self) -> tuple[int, ...]:
        """Catalogue indices of the current candidates."""
        return tuple(self._candidates)

    def observe(self) -> dict[str, Any]:
        """The raw observation of the current state."""
        if not self._started:
            raise ResetNeededError("observe() was called before reset(); call env.reset() first")
        return self._observe()

    def get_state(self) -> RecState:
        """The current state (hidden fields included)."""
        if not self._started:
            raise ResetNeededError("get_state() was called before reset(); call env.reset()")
        user = self.user
        return RecState(
            step=self._step,
            candidates=tuple(self._candidates),
            history=self._history,
            last_clicked=self._last_clicked,
            clicks=self._clicks,
            no_click_streak=self._streak,
            watch_time=self._watch,
            fatigue=tuple(user.fatigue),
            left=user.left,
            log=tuple(self._log),
            interests=tuple(user.interests),
            budget=user.budget,
        )

    def set_state(self, state: RecState) -> None:
        """Continue from ``state`` (the random generator is left as it is)."""
        if not isinstance(state, RecState):
            raise TypeError(
                f"set_state() received {type(state).__name__}; expected a RecState from "
                "get_state() or sample_hidden()"
            )
        if len(state.interests) != self.n_topics or len(state.candidates) != self.n_candidates:
            raise RecommendationConfigError(
                f"state has {len(state.interests)} topics and {len(state.candidates)} "
                f"candidates; this env has {self.n_topics} and {self.n_candidates}"
            )
        user = self.user
        user.interests = list(state.interests)
        user.budget = state.budget
        user.fatigue = list(state.fatigue)
        user.left = state.left
        self._candidates = list(state.candidates)
        self._history = state.history
        self._log = list(state.log)
        self._step = state.step
        self._clicks = state.clicks
        self._streak = state.no_click_streak
        self._watch = state.watch_time
        self._last_clicked = state.last_clicked
        self._started = True

    def sample_hidden(self, state: RecState, rng: np.random.Generator) -> RecState:
        """A copy of ``state`` with interests and budget drawn from the prior.

        Interests are uniform in ``[-1, 1]^n_topics``. The budget is rebuilt from the observable
        log with each clicked item's quality replaced by its topic's mean quality (the agent
        does not see item quality), and kept above 0 while the session is not over.
        """
        config = self.user_config
        quality = self.catalog.topic_quality
        topics = self._topics
        budget = config.budget - config.no_click_cost * (len(state.log) - state.clicks)
        for clicked, *items in state.log:
            if clicked >= 0:
                watch = min(max(budget, 0.0), config.item_minutes)
                budget += watch * (config.refund_rate * quality[topics[items[clicked]]] - 1.0)
        if not state.left and state.log and budget <= 0.0:
            budget = 1e-3
        return replace(
            state,
            interests=tuple(rng.uniform(-1.0, 1.0, self.n_topics).tolist()),
            budget=float(budget),
        )

    def log_likelihood(self, state: RecState) -> float:
        """Log-probability of the logged clicks and no-clicks given the state's interests.

        A documented approximation: the interests in ``state`` are held fixed over the whole
        log (in the true dynamics they drift after each click) and fatigue is ignored; exact for
        the first step and for logs without clicks. Returns -inf for impossible states
        (interests outside [-1, 1], or no budget at the start).
        """
        x = np.asarray(state.interests, dtype=np.float64)
        if x.shape != (self.n_topics,) or np.any(np.abs(x) > 1.0):
            return -np.inf
        if state.budget <= 0.0 and not state.log:
            return -np.inf
        if not state.log:
            return 0.0
        config = self.user_config
        log = np.array(state.log, dtype=np.int64)
        items = log[:, 1:]
        shown = items >= 0
        weights = np.where(
            shown, x[self.catalog.topics[np.where(shown, items, 0)]] - config.min_normalizer, 0.0
        )
        w0 = config.no_click_mass - config.min_normalizer
        clicked = log[:, 0]
        rows = np.arange(len(log))
        numer = np.where(clicked >= 0, weights[rows, np.maximum(clicked, 0)], w0)
        with np.errstate(divide="ignore"):
            return float(np.sum(np.log(numer) - np.log(weights.sum(axis=1) + w0)))

    @property
    def privileged_space(self) -> spaces.Box:
        """Space of :meth:`privileged_features`: ``Box(0, inf, (1,), float32)``."""
        return spaces.Box(0.0, np.inf, shape=(1,), dtype=np.float32)

    def privileged_features(self, state: RecState | None = None) -> np.ndarray:
        """Hidden features for a critic that trains beside the policy (never for acting).

        ``[remaining budget / initial budget]``: what a critic needs to value a session but
        cannot read from the observation. :class:`rlagent.wrappers.PrivilegedObservation`
        adds it to the observation of a training env; a policy built with
        ``privileged_critic=True`` feeds it to the critic only. A planner passes the
        ``state`` it simulates (with a budget drawn from its belief).

        Args:
            state: A state from :meth:`get_state` or :meth:`sample_hidden`; ``None`` reads the
                current one.

        Returns:
            float32 array of shape ``(1,)``.
        """
        budget = self._hidden_budget(state, "privileged_features")
        return np.array([budget / self.user_config.budget], dtype=np.float32)

    def shaping_potential(self, state: RecState | None = None) -> float:
        """The user's remaining time in minutes, as a potential for reward shaping (hidden).

        Every watched minute comes out of the budget, so an episode's return is the initial
        budget plus the minutes that quality refunds, minus the no-click costs. With this
        potential, :class:`rlagent.wrappers.PotentialShaping` turns each reward into exactly
        that step's term: ``quality refund`` after a click, ``-no_click_cost`` without one
        (``reward_shaping: true`` in a training config). For training and planning only.

        Args:
            state: A state from :meth:`get_state` or :meth:`sample_hidden`; ``None`` reads the
                current one.

        Returns:
            ``max(remaining budget, 0)``.
        """
        return self._hidden_budget(state, "shaping_potential")

    def expected_reward(
        self, action: Any, state: RecState | None = None, *, shaped: bool = False
    ) -> float:
        """The reward of ``action`` in ``state`` averaged over the user's possible responses.

        Exact: the user clicks slate item ``i`` with the choice model's probability (from the
        hidden interests) or nothing, and, with boredom, leaves after a no-click. Its
        average over many sampled steps is the reward's; it carries none of the click's noise,
        for training (:class:`rlagent.wrappers.ExpectedReward`) and planning.

        Args:
            action: A slate (or position), as for :meth:`step`.
            state: A state from :meth:`get_state` or :meth:`sample_hidden`; ``None`` reads the
                current one.
            shaped: Average ``r + phi(s') - phi(s)`` instead, with :meth:`shaping_potential`
                as ``phi`` (0 once the session ends).

        Returns:
            The expected (shaped) reward in minutes.
        """
        self._hidden_budget(state, "expected_reward")
        if state is None:
            user, candidates = self.user, self._candidates
        else:
            user = SessionUser(self.user_config)
            user.interests, user.budget = list(state.interests), state.budget
            user.fatigue = list(state.fatigue)
            candidates = state.candidates
        config = self.user_config
        items = [candidates[p] for p in self._parse(action)]
        probs = user.click_probabilities([self._topics[i] for i in items])
        budget = user.budget
        phi = max(budget, 0.0) if shaped else 0.0
        watch = min(max(budget, 0.0), config.item_minutes)
        total = 0.0
        for p, item in zip(probs[:-1], items, strict=True):
            after = budget + watch * (config.refund_rate * self._quality[item] - 1.0)
            total += p * (watch + (max(after, 0.0) if shaped else 0.0))
        if shaped:
            after = max(budget - config.no_click_cost, 0.0)
            total += probs[-1] * (1.0 - config.boredom) * after
        return total - phi

    # ------------------------------------------------------------------ internals
    def _hidden_budget(self, state: RecState | None, caller: str) -> float:
        """``max(budget, 0)`` of ``state`` (the current one for ``None``), for hidden-state methods.

        Raises:
            ResetNeededError: ``state`` is ``None`` before the first reset.
            TypeError: ``state`` has no hidden budget (a state from ``hide()``).
        """
        if state is None:
            if not self._started:
                raise ResetNeededError(
                    f"{caller}() was called before reset(); call env.reset() first"
                )
            budget = self.user.budget
        else:
            budget = state.budget
        if budget is None:
            raise TypeError(
                f"{caller}() needs a state with its hidden fields; a state from hide() has "
                "none (draw them with sample_hidden())"
            )
        return max(float(budget), 0.0)
