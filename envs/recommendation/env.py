"""The recommendation session environment."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs._text import text_space
from envs.recommendation.baselines import (
    BestTopicPolicy,
    MyopicPolicy,
    OracleGreedyPolicy,
    PopularityPolicy,
    RandomPolicy,
)
from envs.recommendation.catalog import Catalog, generate_catalog, load_catalog
from envs.recommendation.user_model import (
    DYNAMICS,
    RecommendationConfigError,
    SessionUser,
    UserConfig,
)

__all__ = ["RecommendationEnv", "RecState", "InvalidSlateError", "ResetNeededError"]

_N_FEATURES = 5


class InvalidSlateError(ValueError):
    """An action is not a valid slate for the environment's action space."""


class ResetNeededError(RuntimeError):
    """``step``/``observe`` was called before ``reset``."""


@dataclass(frozen=True)
class RecState:
    """Everything needed to continue a session exactly, except the random generator.

    Attributes:
        step: Steps taken so far.
        candidates: Catalogue index of each candidate shown now, ``[n_candidates]``.
        history: Catalogue indices of the latest clicked items, newest first (at most
            ``history_length``).
        last_clicked: Whether the previous step had a click.
        clicks: Clicks so far.
        no_click_streak: Steps since the last click (0 right after a click).
        watch_time: Minutes watched so far (the return so far).
        fatigue: Per-topic fatigue counts (empty when fatigue is off).
        left: Whether the user left through boredom.
        log: One entry per step: ``(clicked slate position or -1, item, item, ...)``, the slate
            padded with -1 to ``slate_size`` items.
        interests: Hidden per-topic interests in [-1, 1].
        budget: Hidden remaining time budget, minutes.
    """

    HIDDEN: ClassVar[tuple[str, ...]] = ("interests", "budget")

    step: int
    candidates: tuple[int, ...]
    history: tuple[int, ...]
    last_clicked: bool
    clicks: int
    no_click_streak: int
    watch_time: float
    fatigue: tuple[float, ...]
    left: bool
    log: tuple[tuple[int, ...], ...]
    interests: tuple[float, ...]
    budget: float


@functools.lru_cache(maxsize=8)
def _generated(n_topics: int, n_items: int, cue_noise: float, length: int, seed: int) -> Catalog:
    return generate_catalog(
        n_topics=n_topics,
        n_items=n_items,
        cue_noise=cue_noise,
        max_text_length=length,
        rng=np.random.default_rng(seed),
    )


@functools.lru_cache(maxsize=8)
def _loaded(path: str, mtime: float, n_topics: int, length: int, seed: int) -> Catalog:
    return load_catalog(
        path, n_topics=n_topics, max_text_length=length, rng=np.random.default_rng(seed)
    )


class RecommendationEnv(gym.Env):
    """A user watches recommended items until their time budget runs out.

    ## Description

    Each step the recommender sees ``n_candidates`` items, described in text, and shows the user
    a slate of ``slate_size`` of them. The user clicks at most one item and watches it; what they
    watch moves their interests and, through the item's hidden quality, lengthens or shortens
    the session. The default user model (``dynamics="recsim"``) is RecSim's interest evolution
    (google-research/recsim): 20 topics, 70% of them low-quality, a proportional choice model
    with a no-click option, a 200-minute budget, items of 4 minutes, and a no-click cost of 0.5
    minutes (see :mod:`envs.recommendation.user_model`). Clickbait wins a click as easily as a
    good item but drains the budget, so the trade-off between immediate clicks and a long
    session is real. Quality shows only through noisy wording cues ("SHOCKING", "In-depth")
    and a popularity figure.

    Items come from a catalogue generated from per-topic vocabularies (default; ``n_items``
    items, fixed by ``catalog_seed``), or from a CSV file (``catalog=PATH``, see
    :func:`envs.recommendation.load_catalog`). Candidates are drawn uniformly with replacement
    from the catalogue at every step.

    ## Action Space

    ``Discrete(n_candidates)`` when ``slate_size == 1``, else
    ``MultiDiscrete([n_candidates] * slate_size)``: candidate positions in slate order. A
    position picked twice is shown once (so a slate may hold fewer items); the choice model
    sees only distinct items. Anything outside the space raises :class:`InvalidSlateError`.

    ## Observation Space

    A ``Dict``:

    * ``"candidates"``: ``Tuple`` of ``n_candidates`` texts (``max_text_length`` characters).
    * ``"history"``: ``Tuple`` of ``history_length`` texts: the latest clicked items, newest
      first, ``""`` where there is none yet.
    * ``"candidate_popularity"``: ``Box(0, float32 max, (n_candidates,), float32)``,
      ``log10(1 + views)`` of each candidate (0 when the catalogue has no popularity).
    * ``"features"``: ``Box(0, float32 max, (5,), float32)``: ``[steps / 100, 1 if the last
      step had a click, clicks / 100, minutes watched / initial budget, steps since last
      click / 10]``.

    Interests, budget and qualities are never observed.

    ## Rewards

    Minutes watched in the step: ``min(remaining budget, item_minutes)`` on a click, else 0;
    so each reward is in ``[0, item_minutes]`` (``[0, 4]`` by default).

    ## Starting State

    Interests uniform in ``[-1, 1]^n_topics``, full budget, fresh candidates, empty history.

    ## Episode End

    Terminated when the budget reaches 0 or the user leaves through boredom
    (``boredom > 0``). ``rlagent/Recommendation-v0`` truncates at 300 steps. Every step's info
    holds ``info["episode_metrics"]`` with :attr:`METRICS` so far; ``info["clicked"]`` is the
    clicked slate position or -1.

    ## Arguments

    ``dynamics`` (``"recsim"`` or ``"bored"``: RecSim plus fatigue 0.5 and boredom 0.02),
    ``n_topics``, ``n_candidates``, ``slate_size``, ``history_length``, ``budget``, ``fatigue``,
    ``fatigue_decay``, ``boredom`` (None: the preset's value), ``catalog`` (CSV path),
    ``n_items``, ``catalog_seed``, ``cue_noise``, ``max_text_length``, ``render_mode``
    (``"ansi"``).

    ## Version History

    * v0: Initial version.

    Example:
        >>> import numpy as np
        >>> env = RecommendationEnv(n_candidates=4, slate_size=2)
        >>> obs, info = env.reset(seed=0)
        >>> len(obs["candidates"]), obs["features"].shape
        (4, (5,))
        >>> obs, reward, terminated, truncated, info = env.step(np.array([0, 1]))
        >>> 0.0 <= reward <= 4.0
        True
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    BASELINES: ClassVar[Mapping[str, type]] = {
        "random": RandomPolicy,
        "popularity": PopularityPolicy,
        "myopic": MyopicPolicy,
        "oracle": OracleGreedyPolicy,
        "best_topic": BestTopicPolicy,
    }
    METRICS: ClassVar[tuple[str, ...]] = (
        "watch_time",
        "clicks",
        "session_length",
        "click_through_rate",
        "left_early",
    )
    MAIN_METRIC: ClassVar[str] = "watch_time"

    def __init__(
        self,
        *,
        dynamics: str = "recsim",
        n_topics: int = 20,
        n_candidates: int = 10,
        slate_size: int = 2,
        history_length: int = 3,
        budget: float | None = None,
        fatigue: float | None = None,
        fatigue_decay: float | None = None,
        boredom: float | None = None,
        catalog: str | Path | None = None,
        n_items: int = 1000,
        catalog_seed: int = 0,
        cue_noise: float = 0.3,
        max_text_length: int = 128,
        render_mode: str | None = None,
    ) -> None:
        if dynamics not in DYNAMICS:
            raise RecommendationConfigError(
                f"dynamics={dynamics!r} is unknown; expected one of {sorted(DYNAMICS)}"
            )
        if n_candidates < 1 or not 1 <= slate_size <= n_candidates:
            raise RecommendationConfigError(
                f"n_candidates={n_candidates}, slate_size={slate_size}: need "
                "1 <= slate_size <= n_candidates"
            )
        if history_length < 1 or max_text_length < 1:
            raise RecommendationConfigError(
                f"history_length={history_length} and max_text_length={max_text_length} must "
                "be >= 1"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise RecommendationConfigError(
                f"render_mode={render_mode!r} is unsupported; expected None or 'ansi'"
            )
        overrides = {
            k: float(v)
            for k, v in dict(
                budget=budget, fatigue=fatigue, fatigue_decay=fatigue_decay, boredom=boredom
            ).items()
            if v is not None
        }
        self.user_config: UserConfig = replace(DYNAMICS[dynamics], **overrides)
        if catalog is None:
            self.catalog: Catalog = _generated(
                n_topics, n_items, float(cue_noise), max_text_length, catalog_seed
            )
        else:
            path = Path(catalog).resolve()
            mtime = path.stat().st_mtime if path.is_file() else -1.0
            self.catalog = _loaded(str(path), mtime, n_topics, max_text_length, catalog_seed)
        self.dynamics = dynamics
        self.n_topics = self.catalog.n_topics
        self.n_candidates = n_candidates
        self.slate_size = slate_size
        self.history_length = history_length
        self.render_mode = render_mode

        text = text_space(max_text_length)
        big = float(np.finfo(np.float32).max)
        self.observation_space = spaces.Dict(
            {
                "candidates": spaces.Tuple([text] * n_candidates),
                "history": spaces.Tuple([text] * history_length),
                "candidate_popularity": spaces.Box(0.0, big, (n_candidates,), np.float32),
                "features": spaces.Box(0.0, big, (_N_FEATURES,), np.float32),
            }
        )
        if slate_size == 1:
            self.action_space: spaces.Space = spaces.Discrete(n_candidates)
        else:
            self.action_space = spaces.MultiDiscrete([n_candidates] * slate_size)

        self._texts = self.catalog.texts
        self._topics: list[int] = self.catalog.topics.tolist()
        self._quality: list[float] = self.catalog.quality.tolist()
        self._popularity = self.catalog.popularity
        self._n_items = self.catalog.n_items
        self._pad = (-1,) * slate_size
        self._empty_history = ("",) * history_length
        self.user = SessionUser(self.user_config)
        self._started = False
        self._candidates: list[int] = []
        self._history: tuple[int, ...] = ()
        self._log: list[tuple[int, ...]] = []
        self._step = 0
        self._clicks = 0
        self._streak = 0
        self._watch = 0.0
        self._last_clicked = False

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a session with a new user; returns ``(observation, info)``."""
        super().reset(seed=seed)
        rng = self.np_random
        self.user.start(rng.uniform(-1.0, 1.0, self.n_topics).tolist())
        self._candidates = (rng.random(self.n_candidates) * self._n_items).astype(np.int64).tolist()
        self._history = ()
        self._log = []
        self._step = self._clicks = self._streak = 0
        self._watch = 0.0
        self._last_clicked = False
        self._started = True
        return self._observe(), {"episode_metrics": self._metrics(), "clicked": -1}

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Show a slate; returns ``(observation, reward, terminated, truncated, info)``."""
        if not self._started:
            raise ResetNeededError("step() was called before reset(); call env.reset() first")
        slate = self._parse(action)
        items = [self._candidates[p] for p in slate]
        topics = self._topics
        quality = self._quality
        draws = self.np_random.random(3 + self.n_candidates)
        u = draws[:3].tolist()
        clicked, watch = self.user.respond(
            [topics[i] for i in items], [quality[i] for i in items], u[0], u[1], u[2]
        )
        self._log.append((clicked, *items, *self._pad[len(items) :]))
        self._step += 1
        if clicked >= 0:
            self._clicks += 1
            self._streak = 0
            self._watch += watch
            self._history = (items[clicked], *self._history[: self.history_length - 1])
            self._last_clicked = True
        else:
            self._streak += 1
            self._last_clicked = False
        self._candidates = (draws[3:] * self._n_items).astype(np.int64).tolist()
        terminated = self.user.done
        info = {"episode_metrics": self._metrics(), "clicked": clicked}
        return self._observe(), float(watch), terminated, False, info

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the candidates, the history and the session so far."""
        if self.render_mode != "ansi":
            return None
        lines = [
            f"step {self._step}  clicks {self._clicks}  watched {self._watch:.1f} min",
            "history: " + " | ".join(self._texts[i] for i in self._history),
        ]
        lines += [f"  [{p}] {self._texts[i]}" for p, i in enumerate(self._candidates)]
        return "\n".join(lines)

    # ------------------------------------------------------------------ planning support
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

    def _parse(self, action: Any) -> list[int]:
        n = self.n_candidates
        if self.slate_size == 1:
            try:
                pos = int(action)
                valid = pos == action and 0 <= pos < n
            except (TypeError, ValueError):
                valid = False
            if not valid:
                raise InvalidSlateError(
                    f"action {action!r} is not in Discrete({n}); expected one candidate position "
                    f"in 0..{n - 1}"
                )
            return [pos]
        raw = action.tolist() if isinstance(action, np.ndarray) else action
        try:
            slate = [int(p) for p in raw]
            valid = len(slate) == self.slate_size and all(0 <= p < n for p in slate)
            valid = valid and all(p == q for p, q in zip(slate, raw, strict=True))
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise InvalidSlateError(
                f"action {action!r} is not in MultiDiscrete([{n}] * {self.slate_size}); expected "
                f"{self.slate_size} candidate positions in 0..{n - 1}"
            )
        return list(dict.fromkeys(slate))

    def _observe(self) -> dict[str, Any]:
        texts = self._texts
        history = tuple(texts[i] for i in self._history)
        if len(history) < self.history_length:
            history += self._empty_history[len(history) :]
        features = np.array(
            [
                self._step / 100.0,
                1.0 if self._last_clicked else 0.0,
                self._clicks / 100.0,
                self._watch / self.user_config.budget,
                self._streak / 10.0,
            ],
            dtype=np.float32,
        )
        return {
            "candidates": tuple([texts[i] for i in self._candidates]),
            "history": history,
            "candidate_popularity": self._popularity[self._candidates],
            "features": features,
        }

    def _metrics(self) -> dict[str, float]:
        steps = self._step
        return {
            "watch_time": self._watch,
            "clicks": float(self._clicks),
            "session_length": float(steps),
            "click_through_rate": self._clicks / steps if steps else 0.0,
            "left_early": 1.0 if self.user.left else 0.0,
        }
