"""What the bundled environments' live sessions share: their input error and text checks.

A live session (``env.live_session()``) turns input from a real person (a customer's message, a
user's candidate items) into the observation the env itself would show, with the env's own
code. Input it cannot turn into such an observation raises :class:`LiveInputError`.
"""

from __future__ import annotations

from collections.abc import Iterable

from gymnasium import spaces

__all__ = ["LiveInputError", "check_live_text"]

#: Characters named one by one in a message before it says "and N more".
_SHOWN = 5


class LiveInputError(ValueError):
    """Input to a live session that the env cannot observe; the message says what to change."""


def _describe(char: str) -> str:
    if char.isprintable() and not char.isspace():
        return repr(char)
    return f"U+{ord(char):04X}"


def check_live_text(text: object, space: spaces.Text, what: str) -> str:
    """``text`` if it is a non-empty string of characters ``space`` allows, else raise.

    Args:
        text: The input.
        space: The env's text space; its ``character_set`` is what is allowed.
        what: How the message names the input, e.g. ``"customer text"``.

    Returns:
        ``text`` unchanged.

    Raises:
        LiveInputError: ``text`` is not a string, is empty or whitespace only, or holds
            characters outside the space's character set (named in the message).
    """
    if not isinstance(text, str):
        raise LiveInputError(f"The {what} must be a string, got {type(text).__name__}.")
    if not text.strip():
        raise LiveInputError(
            f"The {what} is empty{' (only whitespace)' if text else ''}; send some text."
        )
    bad = _outside(text, space.character_set)
    if bad:
        shown = ", ".join(_describe(c) for c in bad[:_SHOWN])
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise LiveInputError(
            f"The {what} holds characters this env cannot observe: {shown}{more}; remove them "
            "or map the text into the env's characters first (envs._text.clean_text does: "
            "it strips accents and drops symbols, tabs and newlines)."
        )
    return text


def _outside(text: str, allowed: Iterable[str]) -> list[str]:
    """The distinct characters of ``text`` not in ``allowed``, in order of appearance."""
    allowed = allowed if isinstance(allowed, (set, frozenset)) else frozenset(allowed)
    return list(dict.fromkeys(c for c in text if c not in allowed))
