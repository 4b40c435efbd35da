"""The customer-service env's text: customer utterances, noise, observations, info, render."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.customer_service.corpus import MOODS
from envs.customer_service.state import TurnKind

__all__: list[str] = []


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
        segment = f"Customer: {text}"[: self.max_length]
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
        t = self._transcript
        k = self.history
        dialogue = tuple(t[-k:]) if len(t) >= k else self._pad[len(t)] + tuple(t)
        scale = 1.0 / self.max_turns
        features = np.array(
            (
                self._turn * scale,
                self._n_clarify * scale,
                self._n_apology * scale,
                self._n_wrong * scale,
            ),
            dtype=np.float32,
        )
        np.minimum(features, 1.0, out=features)
        return {"dialogue": dialogue, "features": features, "request": self._request}

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
