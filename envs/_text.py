"""Text helpers shared by the bundled environments (gymnasium + numpy only).

Every bundled environment emits text drawn from :data:`CHARSET` (plus, for a user's data file in
another script, the characters of that file), so that its observations lie inside a
:class:`gymnasium.spaces.Text` space built by :func:`text_space`.
"""

from __future__ import annotations

import codecs
import os
import re
import string
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from gymnasium import spaces

__all__ = ["CHARSET", "TextFileError", "clean_text", "read_utf8", "text_space"]

#: Characters a bundled environment may emit: printable ASCII without tabs or newlines.
CHARSET: str = string.ascii_letters + string.digits + string.punctuation + " "
_CHARSET_SET = frozenset(CHARSET)
_WHITESPACE = re.compile(r"\s+")
# Unicode categories kept outside CHARSET by clean_text(any_script=True): letters, numbers and
# punctuation; symbols (currency signs, emoji...) go, as they do without any_script.
_KEPT_CATEGORIES = ("L", "N", "P")


class TextFileError(ValueError):
    """A text file is not valid UTF-8; the message names the file, line and byte."""


def text_space(max_length: int, extra_chars: str | Iterable[str] = "") -> spaces.Text:
    """A Text space of at most ``max_length`` characters over :data:`CHARSET` (empty allowed).

    Args:
        max_length: Longest text, in characters.
        extra_chars: Further characters the space allows: a string, or strings whose
            characters are all allowed (e.g. the texts of a data file in another script).
    """
    extra = set(extra_chars if isinstance(extra_chars, str) else "".join(extra_chars))
    charset = CHARSET + "".join(sorted(extra - _CHARSET_SET))
    return spaces.Text(max_length=max_length, min_length=0, charset=charset)


def clean_text(text: str, max_length: int | None = None, *, any_script: bool = False) -> str:
    """Map arbitrary text into :data:`CHARSET`, or (``any_script=True``) into printable text.

    Accents are stripped (``café`` -> ``cafe``), runs of whitespace become one space, other
    characters outside the charset are dropped, and the result is cut to ``max_length``.

    With ``any_script=True`` letters, digits and punctuation of every script are kept
    (``"هيبتا"`` stays ``"هيبتا"``, ``"’"`` stays ``"’"``); accents on Latin letters are still
    stripped, and symbols (currency signs, emoji), control and format characters are still
    dropped. Pass the result's characters to :func:`text_space` as ``extra_chars``.

    Args:
        text: Any string, for example a row of a user's CSV file.
        max_length: Optional length limit in characters.
        any_script: Keep the letters of any script instead of mapping into :data:`CHARSET`.

    Returns:
        The cleaned string.
    """
    text = unicodedata.normalize("NFKD", text)
    text = _WHITESPACE.sub(" ", text).strip()
    if not any_script:
        text = "".join(c for c in text if c in _CHARSET_SET)
    else:
        kept = []
        keep_marks = False  # combining marks stay on a kept non-ASCII base character only
        for char in text:
            category = unicodedata.category(char)
            if char in _CHARSET_SET:
                kept.append(char)
                keep_marks = False
            elif category.startswith("M"):
                if keep_marks:
                    kept.append(char)
            elif category.startswith(_KEPT_CATEGORIES):
                kept.append(char)
                keep_marks = True
            else:
                keep_marks = False
        text = unicodedata.normalize("NFC", "".join(kept))
        text = _WHITESPACE.sub(" ", text).strip()
    if max_length is not None:
        text = text[:max_length]
    return text


def read_utf8(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file, with or without a byte-order mark (Excel's "CSV UTF-8").

    Args:
        path: The file.

    Returns:
        Its text, without the byte-order mark; line endings are left as they are.

    Raises:
        TextFileError: The file is not UTF-8, naming the line of the first bad byte.
    """
    raw = Path(path).read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TextFileError(
            f"{os.fspath(path)}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}, "
            f"byte {column} of the line); save the file as UTF-8 (in Excel: Save As > CSV UTF-8)."
        ) from exc
