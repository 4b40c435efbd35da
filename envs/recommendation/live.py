"""A live recommendation session: a real user's candidates and clicks, observed as the env does.

:class:`LiveRecommendation` (from :meth:`RecommendationEnv.live_session`) keeps the part of a
session that a real service knows: the steps, clicks, minutes watched and the items chosen.
Its observations come from the same function as the env's
(``envs.recommendation._observation``), so a policy trained on the env ranks real items
exactly as it ranked simulated ones.

Example:
    >>> from envs.recommendation import RecommendationEnv
    >>> session = RecommendationEnv(n_candidates=3, slate_size=2).live_session()
    >>> obs = session.observation(["Cooking - pasta", "Travel - Rome", "News - today"])
    >>> obs["history"]
    ('', '', '')
    >>> session.record([1, 0], clicked=1)
    >>> session.observation(["a", "b", "c"])["history"][0]
    'Travel - Rome'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from envs._live import LiveInputError, check_live_text
from envs.recommendation._observation import session_observation

if TYPE_CHECKING:  # pragma: no cover
    from envs.recommendation.env import RecommendationEnv

__all__ = ["LiveInputError", "LiveRecommendation"]


class LiveRecommendation:
    """One live session of a real user, observed as :class:`RecommendationEnv` observes.

    Each step, :meth:`observation` turns the candidates the service may show (their texts),
    optionally the texts the user chose before and each candidate's popularity, into the
    env's observation; the agent picks a slate; :meth:`record` then says what the user did
    with it. The features come from the session's own counters, updated as the env's step
    updates them.

    Args:
        env: The env whose settings (``n_candidates``, ``slate_size``, ``history_length``,
            ``max_text_length``, the user model's ``budget`` and ``item_minutes``, text
            characters) the session takes; the env is not used afterwards.
    """

    def __init__(self, env: RecommendationEnv) -> None:
        self.n_candidates = int(env.n_candidates)
        self.slate_size = int(env.slate_size)
        self.history_length = int(env.history_length)
        self._budget = float(env.user_config.budget)
        self._item_minutes = float(env.user_config.item_minutes)
        self._text_space = env.observation_space["candidates"][0]
        self._max_length = int(self._text_space.max_length)
        self._candidates: tuple[str, ...] | None = None
        self._chosen: list[str] = []  # the clicked items' texts, oldest first
        self._step = 0
        self._clicks = 0
        self._streak = 0
        self._watch = 0.0
        self._last_clicked = False

    def observation(
        self,
        candidates: Sequence[str],
        history: Sequence[str] | None = None,
        popularity: Sequence[float] | None = None,
    ) -> dict[str, Any]:
        """The env's observation of these candidates; they become the session's current ones.

        Args:
            candidates: Exactly ``n_candidates`` item texts (each cut to the env's
                ``max_text_length`` characters, as the env's catalogue cuts its titles).
            history: The texts the user chose before, oldest first (newest last); the env
                shows the newest ``history_length``. ``None``: the items clicked in this
                session (:meth:`record`).
            popularity: Each candidate's popularity as the env shows it, ``log10(1 +
                views)`` (>= 0); ``None``: zeros, as for a catalogue without popularity.

        Returns:
            ``{"candidates", "history", "candidate_popularity", "features"}`` as
            ``RecommendationEnv`` returns it.

        Raises:
            LiveInputError: A wrong number of candidates or popularity values, an empty text,
                characters the env's text space lacks, or a popularity that is negative or
                not a finite number.
        """
        if isinstance(candidates, str) or not isinstance(candidates, Sequence):
            raise LiveInputError(
                f"candidates must be a list of {self.n_candidates} item texts, got "
                f"{type(candidates).__name__}."
            )
        if len(candidates) != self.n_candidates:
            raise LiveInputError(
                f"Got {len(candidates)} candidates; this env's agent chooses among exactly "
                f"{self.n_candidates} (n_candidates): send {self.n_candidates} item texts."
            )
        texts = tuple(self._text(t, f"candidate {i}") for i, t in enumerate(candidates))
        if history is None:
            chosen = self._chosen
        else:
            if isinstance(history, str) or not isinstance(history, Sequence):
                raise LiveInputError(
                    f"history must be a list of item texts (oldest first), got "
                    f"{type(history).__name__}."
                )
            chosen = [self._text(t, f"history item {i}") for i, t in enumerate(history)]
        newest_first = chosen[::-1][: self.history_length]
        values = self._popularity(popularity)
        self._candidates = texts
        return session_observation(
            texts,
            newest_first,
            values,
            history_length=self.history_length,
            step=self._step,
            last_clicked=self._last_clicked,
            clicks=self._clicks,
            watch=self._watch,
            budget=self._budget,
            streak=self._streak,
        )

    def record(
        self, slate: Sequence[int] | int, clicked: int | None, minutes: float | None = None
    ) -> None:
        """What the user did with the slate shown for the latest :meth:`observation`.

        Updates the step, click and no-click counters, the minutes watched and whether the
        last step had a click, as ``RecommendationEnv.step`` does, and adds the clicked
        item's text to the session's own history.

        Args:
            slate: The candidate positions shown (the agent's slate; a position given twice
                is shown once, as in the env), or one position.
            clicked: The candidate position the user clicked (one of ``slate``), or ``None``.
            minutes: Minutes the user watched the clicked item; ``None`` counts the env's
                ``item_minutes`` (4 by default) for a click. Must be 0 or ``None`` without a
                click.

        Raises:
            LiveInputError: No observation yet; a position outside ``0..n_candidates - 1`` or
                a slate longer than ``slate_size``; ``clicked`` not in the slate; a negative
                or non-finite ``minutes``, or minutes without a click.
        """
        if self._candidates is None:
            raise LiveInputError(
                "record() was called before observation(); send the candidates first, then "
                "record what the user did with the slate shown."
            )
        n = self.n_candidates
        raw = [slate] if isinstance(slate, (int, np.integer)) else slate
        if isinstance(raw, str) or not isinstance(raw, (Sequence, np.ndarray)):
            raise LiveInputError(
                f"slate must be a list of candidate positions, got {type(slate).__name__}."
            )
        positions = [self._position(p, "slate") for p in raw]
        if not 1 <= len(positions) <= self.slate_size:
            raise LiveInputError(
                f"The slate has {len(positions)} positions; this env shows 1 to "
                f"{self.slate_size} (slate_size) of its {n} candidates."
            )
        shown = list(dict.fromkeys(positions))
        watched = 0.0
        if clicked is not None:
            position = self._position(clicked, "clicked")
            if position not in shown:
                raise LiveInputError(
                    f"clicked={position} is not in the slate {shown}; send the candidate "
                    "position the user clicked, one of the slate's."
                )
            watched = self._item_minutes if minutes is None else self._minutes(minutes)
        elif minutes is not None and self._minutes(minutes) != 0.0:
            raise LiveInputError(
                f"minutes={minutes!r} without a click; send clicked=<position> with the minutes "
                "watched, or no minutes."
            )
        self._step += 1
        if clicked is None:
            self._streak += 1
            self._last_clicked = False
            return
        self._clicks += 1
        self._streak = 0
        self._watch += watched
        self._chosen.append(self._candidates[position])
        self._last_clicked = True

    # ------------------------------------------------------------------ status
    @property
    def step(self) -> int:
        """Steps recorded so far."""
        return self._step

    @property
    def clicks(self) -> int:
        """Clicks recorded so far."""
        return self._clicks

    @property
    def watch_time(self) -> float:
        """Minutes watched so far."""
        return self._watch

    @property
    def history(self) -> tuple[str, ...]:
        """Texts of the items clicked in this session, oldest first."""
        return tuple(self._chosen)

    @property
    def candidates(self) -> tuple[str, ...] | None:
        """The candidates of the latest observation (``None`` before the first)."""
        return self._candidates

    # ------------------------------------------------------------------ internals
    def _text(self, text: object, what: str) -> str:
        return check_live_text(text, self._text_space, what)[: self._max_length]

    def _position(self, value: object, what: str) -> int:
        n = self.n_candidates
        valid = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not valid or not 0 <= int(value) < n:
            raise LiveInputError(
                f"{what} position {value!r} is not a candidate position; expected an int in "
                f"[0, {n - 1}]."
            )
        return int(value)

    def _minutes(self, minutes: object) -> float:
        try:
            value = float(minutes)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0.0:
            raise LiveInputError(f"minutes={minutes!r}; expected a finite number of minutes >= 0.")
        return value

    def _popularity(self, popularity: Sequence[float] | None) -> np.ndarray:
        n = self.n_candidates
        if popularity is None:
            return np.zeros(n, dtype=np.float32)
        try:
            values = np.asarray(popularity, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise LiveInputError(
                f"popularity must be a list of {n} numbers, got {popularity!r}."
            ) from None
        if values.shape != (n,):
            raise LiveInputError(
                f"Got {values.size} popularity values for {n} candidates; send one per "
                "candidate (log10(1 + views)), or none."
            )
        if not np.all(np.isfinite(values)) or np.any(values < 0.0):
            raise LiveInputError(
                "popularity values must be finite numbers >= 0 (log10(1 + views)); got "
                f"{values.tolist()}."
            )
        return values.astype(np.float32)
