"""Text helpers shared by the bundled environments (gymnasium + numpy only).

Every bundled environment emits text drawn from :data:`CHARSET`, so that its observations
lie inside a :class:`gymnasium.spaces.Text` space built by :func:`text_space`.
"""

from __future__ import annotations

import re
import string
import unicodedata

from gymnasium import spaces

#: Characters a bundled environment may emit: printable ASCII without tabs or newlines.
CHARSET: str = string.ascii_letters + string.digits + string.punctuation + " "
_CHARSET_SET = frozenset(CHARSET)
_WHITESPACE = re.compile(r"\s+")


def text_space(max_length: int) -> spaces.Text:
    """A Text space of at most ``max_length`` characters over :data:`CHARSET` (empty allowed)."""
    return spaces.Text(max_length=max_length, min_length=0, charset=CHARSET)


def clean_text(text: str, max_length: int | None = None) -> str:
    """Map arbitrary text into :data:`CHARSET`.

    Accents are stripped (``café`` -> ``cafe``), runs of whitespace become one space, other
    characters outside the charset are dropped, and the result is cut to ``max_length``.

    Args:
        text: Any string, for example a row of a user's CSV file.
        max_length: Optional length limit in characters.

    Returns:
        The cleaned string.
    """
    text = unicodedata.normalize("NFKD", text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = "".join(c for c in text if c in _CHARSET_SET)
    if max_length is not None:
        text = text[:max_length]
    return text
