"""The recommendation env's planning state: everything needed to continue a session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["RecState"]


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
