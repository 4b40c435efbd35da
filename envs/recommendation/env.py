"""The recommendation session environment.

The env class keeps its manual, arguments and session loop here; its planning state is
:class:`~envs.recommendation.state.RecState` and its planning support lives in ``_planning``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs._text import text_space
from envs.recommendation._observation import N_FEATURES, session_observation
from envs.recommendation._planning import _PlanningSupport
from envs.recommendation.baselines import (
    BestTopicPolicy,
    MyopicPolicy,
    OracleGreedyPolicy,
    PopularityPolicy,
    RandomPolicy,
)
from envs.recommendation.catalog import Catalog, generate_catalog, load_catalog
from envs.recommendation.errors import InvalidSlateError, ResetNeededError
from envs.recommendation.live import LiveRecommendation
from envs.recommendation.state import RecState
from envs.recommendation.user_model import (
    DYNAMICS,
    RecommendationConfigError,
    SessionUser,
    UserConfig,
)

__all__ = ["RecommendationEnv", "RecState", "InvalidSlateError", "ResetNeededError"]


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


class RecommendationEnv(_PlanningSupport, gym.Env):
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

    Texts are printable ASCII, plus the other characters of a ``catalog`` file's titles (a
    catalogue in Arabic, say). Interests, budget and qualities are never observed.

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

    ## Live sessions

    :meth:`live_session` returns a :class:`~envs.recommendation.live.LiveRecommendation`: a
    real user's candidate texts (and optionally the texts they chose before and each
    candidate's popularity) and their clicks (``record``) build the observation this env
    would show, by the same code, so a policy trained here ranks real items unchanged.

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

        text = text_space(max_text_length, extra_chars=self.catalog.texts)
        big = float(np.finfo(np.float32).max)
        self.observation_space = spaces.Dict(
            {
                "candidates": spaces.Tuple([text] * n_candidates),
                "history": spaces.Tuple([text] * history_length),
                "candidate_popularity": spaces.Box(0.0, big, (n_candidates,), np.float32),
                "features": spaces.Box(0.0, big, (N_FEATURES,), np.float32),
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

    def live_session(self) -> LiveRecommendation:
        """A new :class:`~envs.recommendation.live.LiveRecommendation` with this env's settings.

        A real user's candidates, history and clicks go in, this env's observations come out;
        the env itself is not touched (see "Live sessions" above).
        """
        return LiveRecommendation(self)

    # ------------------------------------------------------------------ internals
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
        return session_observation(
            [texts[i] for i in self._candidates],
            [texts[i] for i in self._history],
            self._popularity[self._candidates],
            history_length=self.history_length,
            step=self._step,
            last_clicked=self._last_clicked,
            clicks=self._clicks,
            watch=self._watch,
            budget=self.user_config.budget,
            streak=self._streak,
        )

    def _metrics(self) -> dict[str, float]:
        steps = self._step
        return {
            "watch_time": self._watch,
            "clicks": float(self._clicks),
            "session_length": float(steps),
            "click_through_rate": self._clicks / steps if steps else 0.0,
            "left_early": 1.0 if self.user.left else 0.0,
        }
