"""The customer-service env's text: customer utterances, noise, observations, info, render."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from envs.customer_service.corpus import MOODS
from envs.customer_service.state import TurnKind

__all__: list[str] = []

#: What starts every customer segment of the transcript.
CUSTOMER_PREFIX = "Customer: "
#: What starts every agent segment of the transcript.
AGENT_PREFIX = "Agent: "


def customer_segment(text: str, max_length: int) -> str:
    """The transcript segment of a customer's ``text``, cut to ``max_length`` characters."""
    return f"{CUSTOMER_PREFIX}{text}"[:max_length]


def dialogue_observation(
    transcript: Sequence[str],
    request: str,
    *,
    history: int,
    max_turns: int,
    turn: int,
    n_clarify: int,
    n_apology: int,
    n_wrong: int,
) -> dict[str, Any]:
    """The observation of a dialogue: the env's and a live session's, built in one place.

    Args:
        transcript: Every segment so far, oldest first.
        request: The newest request segment.
        history: Segments in the ``"dialogue"`` entry.
        max_turns: The env's turn limit (the features' scale).
        turn: Agent turns so far.
        n_clarify: Clarification questions so far.
        n_apology: Apologies so far.
        n_wrong: Wrong resolutions so far.

    Returns:
        ``{"dialogue": tuple of history segments, "features": float32 [4], "request": str}``.
    """
    n = len(transcript)
    if n >= history:
        dialogue = tuple(transcript[n - history :])
    else:
        dialogue = ("",) * (history - n) + tuple(transcript)
    scale = 1.0 / max_turns
    features = np.array(
        (turn * scale, n_clarify * scale, n_apology * scale, n_wrong * scale),
        dtype=np.float32,
    )
    np.minimum(features, 1.0, out=features)
    return {"dialogue": dialogue, "features": features, "request": request}


def rejected_mask(rejected: int, n_actions: int) -> np.ndarray:
    """Boolean mask over ``n_actions`` actions, ``False`` at each bit set in ``rejected``."""
    mask = np.ones(n_actions, dtype=bool)
    while rejected:
        low = rejected & -rejected
        mask[low.bit_length() - 1] = False
        rejected ^= low
    return mask


class _DialogueRendering:
    """What :class:`~envs.customer_service.CustomerServiceEnv` says, shows and reports.

    A mixin: it reads the episode attributes that the env's ``__init__``, ``reset`` and
    ``step`` keep (``bank``, ``noise``, ``history``, ``max_length``, ``_transcript`` ...).
    """

    def _say(self, kind: int) -> None:
        bank = self.bank
        rng = self.np_random
        mood = self._mood
        opener = closer = -1
        if kind in TurnKind.REQUESTS:
            if kind == TurnKind.OPEN_VAGUE:
                body, text = bank.vague(self._intent, rng)
            else:
                body, text = bank.specific(self._intent, rng)
            opener = bank.openers.sample(mood, rng)
            closer = bank.closers.sample(mood, rng)
            parts = (bank.openers.texts[opener], text, bank.closers.texts[closer])
            text = " ".join(p for p in parts if p)
        else:
            body, text = bank.reply(kind - TurnKind.COMPLAINT, rng)
            if kind in TurnKind.MOODY_REPLIES:
                closer = bank.closers.sample(mood, rng)
                if bank.closers.texts[closer]:
                    text = f"{text} {bank.closers.texts[closer]}"
        if self.noise > 0.0:
            text = self._add_noise(text, rng)
        self._keys.append((kind, body, opener, closer))
        segment = customer_segment(text, self.max_length)
        self._transcript.append(segment)
        if kind in TurnKind.REQUESTS:
            self._request = segment

    def _add_noise(self, text: str, rng: np.random.Generator) -> str:
        words = text.split(" ")
        hits = rng.random(len(words))
        how = rng.random(len(words))
        out = []
        for word, hit, h in zip(words, hits, how, strict=True):
            if hit >= self.noise:
                out.append(word)
            elif h < 0.5 or len(word) < 2:
                continue  # dropped
            else:
                i = int((h - 0.5) * 2 * (len(word) - 1))
                out.append(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
        return " ".join(out) if out else words[0]

    def _observation(self) -> dict[str, Any]:
        return dialogue_observation(
            self._transcript,
            self._request,
            history=self.history,
            max_turns=self.max_turns,
            turn=self._turn,
            n_clarify=self._n_clarify,
            n_apology=self._n_apology,
            n_wrong=self._n_wrong,
        )

    def _info(self) -> dict[str, Any]:
        outcome = self._outcome
        return {
            "success": outcome == "success",
            "intent": self.intents[self._intent],
            "group": self.groups[self._group],
            "turns": self._turn,
            "mood": MOODS[self._mood],
            "outcome": outcome,
            "episode_metrics": {
                "success_rate": 1.0 if outcome == "success" else 0.0,
                "turns": float(self._turn),
                "escalated": 1.0 if outcome == "escalated" else 0.0,
                "abandoned": 1.0 if outcome == "abandoned" else 0.0,
                "wrong_resolutions": float(self._n_wrong),
            },
        }

    def render(self) -> str | None:
        """The transcript so far, one segment per line (``render_mode="ansi"``).

        Other render modes (SB3's ``make_vec_env`` asks for ``"rgb_array"``) render nothing.
        """
        if self.render_mode != "ansi":
            gym.logger.warn(
                f"render_mode={self.render_mode!r}: CustomerServiceEnv renders only 'ansi' "
                "(the transcript); pass render_mode='ansi'."
            )
            return None
        lines = list(self._transcript)
        if self._outcome and self._outcome != "unset":
            lines.append(f"[{self._outcome}]")
        return "\n".join(lines)
