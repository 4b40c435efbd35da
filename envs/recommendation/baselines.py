"""Baseline recommendation policies (built as ``cls(env)``, with ``reset(seed)`` and ``act(obs)``).

* :class:`RandomPolicy` -- a slate of distinct candidates drawn uniformly.
* :class:`PopularityPolicy` -- the most popular candidates (``candidate_popularity``).
* :class:`MyopicPolicy` -- the best immediate expected click from the observation alone: it
  reads each text's topic from the catalogue (the topic is written in the text) and estimates
  each topic's click rate from what it showed and what was clicked.
* :class:`OracleGreedyPolicy` -- reads the hidden interests and qualities and picks the slate
  with the best one-step value (watch time plus the value of the budget change); an upper
  reference, not a fair competitor.
* :class:`BestTopicPolicy` -- RecSim's "greedy on the best topic": the candidates whose topic has
  the highest mean quality (catalogue metadata, no user state).

Slates are returned as ``int`` for ``slate_size == 1`` and as an int64 array of distinct
positions otherwise (the oracle may repeat a position to show fewer items).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "RandomPolicy",
    "PopularityPolicy",
    "MyopicPolicy",
    "OracleGreedyPolicy",
    "BestTopicPolicy",
]


class _Policy:
    """Shared plumbing: slate size, candidate count and a seeded generator."""

    def __init__(self, env: Any) -> None:
        self.env = env
        base = env.unwrapped
        self.n_candidates: int = base.n_candidates
        self.slate_size: int = base.slate_size
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; a seed re-seeds the policy's generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def _slate(self, positions: list[int]) -> int | np.ndarray:
        if self.slate_size == 1:
            return int(positions[0])
        return np.array(positions[: self.slate_size], dtype=np.int64)

    def _top(self, scores: np.ndarray) -> int | np.ndarray:
        """Positions of the ``slate_size`` highest scores, ties broken at random."""
        keys = self.rng.random(len(scores))
        order = np.lexsort((keys, -np.asarray(scores, dtype=np.float64)))
        return self._slate(order[: self.slate_size].tolist())


class RandomPolicy(_Policy):
    """Distinct candidates drawn uniformly at random (RecSim's ``RandomAgent``)."""

    def act(self, observation: Any) -> int | np.ndarray:
        """A random slate."""
        n, s = self.n_candidates, self.slate_size
        if s == 1:
            return int(self.rng.integers(n))
        positions = list(range(n))
        for i, u in enumerate(self.rng.random(s).tolist()):
            j = i + int(u * (n - i))
            positions[i], positions[j] = positions[j], positions[i]
        return np.array(positions[:s], dtype=np.int64)

    def action_probabilities(self, observation: Any) -> np.ndarray:
        """Its distribution over every slate, in the action space's row-major order.

        Uniform over the ordered slates of distinct positions, 0 on those that repeat one:
        ``[n_candidates ** slate_size]`` (``[n_candidates]`` for ``slate_size == 1``).
        """
        n, s = self.n_candidates, self.slate_size
        grid = np.indices((n,) * s).reshape(s, -1)
        distinct = np.ones(grid.shape[1], dtype=bool)
        for i in range(s):
            for j in range(i + 1, s):
                distinct &= grid[i] != grid[j]
        return distinct / distinct.sum()


class PopularityPolicy(_Policy):
    """The most popular candidates by ``observation["candidate_popularity"]``."""

    def act(self, observation: Any) -> int | np.ndarray:
        """The top slate by popularity."""
        return self._top(observation["candidate_popularity"])


class MyopicPolicy(_Policy):
    """Maximise the immediate click probability estimated from observations.

    Per topic it counts impressions and clicks of its own slates (a click is seen through the
    ``last click`` feature and the newest history text) and scores a topic by
    ``(clicks + 1) / (impressions + 3)``.
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.catalog = env.unwrapped.catalog
        self._shown: list[int] = []
        self._clicks = np.zeros(self.catalog.n_topics)
        self._impressions = np.zeros(self.catalog.n_topics)

    def reset(self, seed: int | None = None) -> None:
        """Forget the previous user."""
        super().reset(seed)
        self._shown = []
        self._clicks[:] = 0.0
        self._impressions[:] = 0.0

    def act(self, observation: Any) -> int | np.ndarray:
        """The slate of candidates with the best estimated click rates."""
        topic_of = self.catalog.topic_of_text
        if self._shown:
            for t in self._shown:
                self._impressions[t] += 1.0
            if observation["features"][1] > 0.5:
                t = topic_of(observation["history"][0])
                if t >= 0:
                    self._clicks[t] += 1.0
        rates = (self._clicks + 1.0) / (self._impressions + 3.0)
        topics = [topic_of(text) for text in observation["candidates"]]
        scores = np.array([rates[t] if t >= 0 else 1.0 / 3.0 for t in topics])
        slate = self._top(scores)
        positions = [slate] if isinstance(slate, int) else slate.tolist()
        self._shown = [topics[p] for p in dict.fromkeys(positions) if topics[p] >= 0]
        return slate


class OracleGreedyPolicy(_Policy):
    """One-step optimal slate given the hidden interests and item qualities.

    The value of a click on item ``i`` is its watch time plus ``budget_value`` times its budget
    change, ``L + budget_value * L * (refund_rate * quality_i - 1)``; a no-click is worth
    ``-budget_value * (no_click_cost + boredom * remaining budget)``. Items are added greedily
    while they raise the expected value under the choice model; a slate with fewer items
    repeats one.

    Args:
        env: The environment (its ``unwrapped`` is read).
        budget_value: Value of one minute of remaining budget, in watched minutes (1.5: about
            the return per budget minute of a good policy, 300 / 200).
    """

    def __init__(self, env: Any, budget_value: float = 1.5) -> None:
        super().__init__(env)
        self.budget_value = budget_value

    def act(self, observation: Any) -> int | np.ndarray:
        """The greedy slate."""
        base = self.env.unwrapped
        user, config, catalog = base.user, base.user_config, base.catalog
        items = base.candidate_items
        minutes = config.item_minutes
        w0 = config.no_click_mass - config.min_normalizer
        weights = [user.appeal(int(catalog.topics[i])) for i in items]
        values = [
            minutes + self.budget_value * minutes * (config.refund_rate * catalog.quality[i] - 1)
            for i in items
        ]
        # A no-click costs its minutes and, with boredom, risks the rest of the session.
        no_click = config.no_click_cost + config.boredom * max(user.budget, 0.0)
        num, den = -self.budget_value * no_click * w0, w0
        chosen: list[int] = []
        while len(chosen) < self.slate_size:
            best, best_value = -1, -np.inf if not chosen else num / den
            for p in range(len(items)):
                if p in chosen:
                    continue
                value = (num + weights[p] * values[p]) / (den + weights[p])
                if value > best_value:
                    best, best_value = p, value
            if best < 0:
                break
            chosen.append(best)
            num += weights[best] * values[best]
            den += weights[best]
        chosen += [chosen[0]] * (self.slate_size - len(chosen))
        return self._slate(chosen)


class BestTopicPolicy(_Policy):
    """Candidates whose topic has the highest mean quality (RecSim's greedy best topic)."""

    def act(self, observation: Any) -> int | np.ndarray:
        """The slate of the best-topic candidates."""
        catalog = self.env.unwrapped.catalog
        items = np.asarray(self.env.unwrapped.candidate_items)
        return self._top(catalog.topic_quality[catalog.topics[items]])
