"""The recommendation env's observation, built in one place for the env and live sessions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__: list[str] = []

#: Entries of the ``"features"`` observation.
N_FEATURES = 5


def session_observation(
    candidates: Sequence[str],
    history: Sequence[str],
    popularity: np.ndarray,
    *,
    history_length: int,
    step: int,
    last_clicked: bool,
    clicks: int,
    watch: float,
    budget: float,
    streak: int,
) -> dict[str, Any]:
    """The observation of a recommendation session (see ``RecommendationEnv``).

    Args:
        candidates: The candidates' texts, ``[n_candidates]``.
        history: Texts of the latest clicked items, newest first, at most ``history_length``.
        popularity: ``log10(1 + views)`` of each candidate, float32 ``[n_candidates]``.
        history_length: Entries of ``"history"``; missing ones are ``""``.
        step: Steps so far.
        last_clicked: Whether the previous step had a click.
        clicks: Clicks so far.
        watch: Minutes watched so far.
        budget: The user's initial time budget, minutes (the scale of ``watch``).
        streak: Steps since the last click.

    Returns:
        ``{"candidates", "history", "candidate_popularity", "features"}``.
    """
    history = tuple(history)
    if len(history) < history_length:
        history += ("",) * (history_length - len(history))
    features = np.array(
        [
            step / 100.0,
            1.0 if last_clicked else 0.0,
            clicks / 100.0,
            watch / budget,
            streak / 10.0,
        ],
        dtype=np.float32,
    )
    return {
        "candidates": tuple(candidates),
        "history": history,
        "candidate_popularity": popularity,
        "features": features,
    }
