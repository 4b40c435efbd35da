"""Bring-your-own utterances: a CSV ``text,category`` (Banking77's format) plus a group mapping.

Each row is one customer request; its category is the intent, and ``groups`` maps each
category to the resolution group the agent must pick. The package ships a mapping of the 77
Banking77 category names into the 11 built-in groups (``data/banking77_groups.json``, our own
grouping); the Banking77 data itself is not redistributed.

Splits: pass the training file with ``split="train"`` or ``split="val"`` and the test file with
``split="test"``. A validation part of the training file is held out by
:func:`validation_split`: ``split="train"`` uses the rows not held out, ``split="val"`` only the
held-out rows (``val_fraction`` of each category, 0.1 by default), ``split="test"`` every row of
the file given. The group list (the action space) comes from the mapping, so every file and
split gives the same actions. ``split`` also selects which vague openings and mood phrases of
the built-in corpus wrap the rows.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import numbers
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from envs._text import TextFileError, clean_text, read_utf8
from envs.customer_service import _corpus_data as data
from envs.customer_service.corpus import Template, UtteranceBank, check_split, make_bank
from envs.customer_service.errors import CustomerServiceConfigError, DatasetFormatError

__all__ = [
    "BANKING77_GROUPS_FILE",
    "DEFAULT_VAL_FRACTION",
    "DatasetNotFoundError",
    "check_val_fraction",
    "dataset_bank",
    "load_groups",
    "read_dataset",
    "validation_split",
]

#: Name of the bundled Banking77 category -> group mapping inside the package's data folder.
BANKING77_GROUPS_FILE = "banking77_groups.json"
#: Share of each category's rows of a training file held out for ``split="val"``.
DEFAULT_VAL_FRACTION = 0.1
_HEADER = ("text", "category")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset or group-mapping path does not exist."""


def _bundled_groups() -> dict[str, str]:
    path = resources.files("envs.customer_service") / "data" / BANKING77_GROUPS_FILE
    return json.loads(path.read_text(encoding="utf-8"))


def load_groups(groups: Mapping[str, str] | str | os.PathLike | None) -> dict[str, str]:
    """Resolve a category -> group mapping.

    Args:
        groups: A dict, a path to a JSON object file ``{"category": "group", ...}``, or
            ``None`` for the bundled Banking77 mapping.

    Returns:
        The mapping, in the order given (the order of first appearance of each group is
        the order of the resolve actions).

    Raises:
        DatasetNotFoundError: If the file does not exist.
        DatasetFormatError: If the file is not a JSON object of strings to strings.
    """
    if groups is None:
        return _bundled_groups()
    if isinstance(groups, Mapping):
        mapping, source = dict(groups), "groups="
    else:
        path = Path(groups)
        if not path.is_file():
            raise DatasetNotFoundError(
                f"group mapping file {str(path)!r} does not exist; pass an existing JSON file "
                "or a dict {category: group}, or leave groups=None for the Banking77 mapping."
            )
        try:
            mapping = json.loads(read_utf8(path))
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(
                f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}); expected an object "
                'like {"card_arrival": "card_delivery"}.'
            ) from exc
        except TextFileError as exc:
            raise DatasetFormatError(str(exc)) from exc
        source = str(path)
        if not isinstance(mapping, dict):
            raise DatasetFormatError(
                f"{path}, line 1: expected a JSON object {{category: group}}, found "
                f"{type(mapping).__name__}."
            )
    for category, group in mapping.items():
        if not isinstance(group, str) or not group or not isinstance(category, str):
            raise DatasetFormatError(
                f"{source}: category {category!r} maps to {group!r}; expected a non-empty "
                "group name string."
            )
    if not mapping:
        raise DatasetFormatError(f"{source}: the group mapping is empty; map every category.")
    return mapping


def read_dataset(path: str | os.PathLike, groups: Mapping[str, str]) -> list[tuple[str, str]]:
    """Read a ``text,category`` CSV, checking every row against ``groups``.

    The file is UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8"). Texts go
    through :func:`envs._text.clean_text` with ``any_script=True``: letters of every script
    are kept, so a row in Arabic is as good as one in English.

    Args:
        path: CSV file with a header row naming the columns ``text`` and ``category``.
        groups: Category -> group mapping; every category in the file must be in it.

    Returns:
        ``(text, category)`` pairs in file order.

    Raises:
        DatasetNotFoundError: If ``path`` does not exist.
        DatasetFormatError: Naming the file and line, for a missing header column, a row with
            the wrong number of fields, an empty text or category, a category missing from
            ``groups``, text that is not UTF-8, or a file without rows.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(
            f"dataset file {str(path)!r} does not exist; pass the path of a CSV with columns "
            "text,category (for Banking77: .../banking77/train.csv or test.csv)."
        )
    try:
        content = read_utf8(path)
    except TextFileError as exc:
        raise DatasetFormatError(str(exc)) from exc
    rows: list[tuple[str, str]] = []
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetFormatError(
                f"{path}, line 1: the file is empty; expected a header row 'text,category'."
            )
        columns = [h.strip().lower() for h in header]
        missing = [c for c in _HEADER if c not in columns]
        if missing:
            raise DatasetFormatError(
                f"{path}, line 1: header {header!r} lacks column(s) {missing}; expected a "
                "header row 'text,category'."
            )
        text_col, cat_col = columns.index("text"), columns.index("category")
        for record in reader:
            line = reader.line_num
            if not record:
                continue
            if len(record) != len(columns):
                raise DatasetFormatError(
                    f"{path}, line {line}: found {len(record)} field(s), expected "
                    f"{len(columns)} ({','.join(columns)}); quote texts that contain commas."
                )
            raw_text = record[text_col]
            category = record[cat_col].strip()
            if not raw_text.strip():
                raise DatasetFormatError(f"{path}, line {line}: the text field is empty.")
            text = clean_text(raw_text, any_script=True)
            if not text:
                raise DatasetFormatError(
                    f"{path}, line {line}: the text field {raw_text!r} holds no letter, digit "
                    "or punctuation mark; write the customer's words there."
                )
            if not category:
                raise DatasetFormatError(f"{path}, line {line}: the category field is empty.")
            if category not in groups:
                raise DatasetFormatError(
                    f"{path}, line {line}: category {category!r} has no group in the group "
                    "mapping; add it to groups= (a dict or JSON file category -> group)."
                )
            rows.append((text, category))
    except csv.Error as exc:
        raise DatasetFormatError(f"{path}, line {reader.line_num}: {exc}.") from exc
    if not rows:
        raise DatasetFormatError(f"{path}: the file has a header but no rows.")
    return rows


def check_val_fraction(val_fraction: float) -> float:
    """``val_fraction`` as a float, checked to lie in [0, 1).

    Raises:
        CustomerServiceConfigError: If it is not a number with ``0 <= val_fraction < 1``.
    """
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, numbers.Real)
        or not 0.0 <= float(val_fraction) < 1.0
    ):
        raise CustomerServiceConfigError(
            f"val_fraction={val_fraction!r} must be a number in [0, 1): the share of each "
            "category's rows of the dataset held out for split='val', e.g. val_fraction=0.1 "
            "(0 holds out nothing)."
        )
    return float(val_fraction)


def _text_key(text: str) -> str:
    """A stable pseudo-random key of a text (the same in every process and on every machine)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def validation_split(
    rows: Sequence[tuple[str, str]], val_fraction: float = DEFAULT_VAL_FRACTION
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Hold out a validation part of a dataset's rows, per category and by text.

    Within each category the distinct texts are ordered by the SHA-256 of their text, and the
    first ``round(val_fraction * n)`` of its ``n`` distinct texts are held out (halves round
    up), but never all of them: at least one text of every category stays for training. A
    category too small to hold out anything (fewer than ``0.5 / val_fraction`` distinct texts,
    e.g. fewer than 5 with 0.1) stays whole in the training part. Every row whose text is held
    out goes to validation, so repeated rows never straddle the two parts. The split depends
    only on the rows' texts and categories, not on their order or on any random seed.

    Args:
        rows: ``(text, category)`` pairs, e.g. from :func:`read_dataset`.
        val_fraction: Share of each category's distinct texts to hold out, in [0, 1).

    Returns:
        ``(train_rows, val_rows)``, each in the order of ``rows``.

    Raises:
        CustomerServiceConfigError: If ``val_fraction`` is not in [0, 1).
    """
    fraction = check_val_fraction(val_fraction)
    texts: dict[str, set[str]] = defaultdict(set)
    for text, category in rows:
        texts[category].add(text)
    held_out: set[tuple[str, str]] = set()
    for category, distinct in texts.items():
        count = min(math.floor(fraction * len(distinct) + 0.5), len(distinct) - 1)
        ordered = sorted(distinct, key=lambda text: (_text_key(text), text))
        held_out.update((text, category) for text in ordered[:count])
    train = [row for row in rows if (row[0], row[1]) not in held_out]
    val = [row for row in rows if (row[0], row[1]) in held_out]
    return train, val


def _label(group: str) -> str:
    known = dict(data.GROUPS)
    return known.get(group, group.replace("_", " "))


@functools.lru_cache(maxsize=16)
def _cached_bank(
    path: str,
    stamp: tuple[int, int],
    groups: tuple[tuple[str, str], ...],
    split: str,
    val_fraction: float,
) -> UtteranceBank:
    mapping = dict(groups)
    rows = read_dataset(path, mapping)
    if split != "test":
        train_rows, val_rows = validation_split(rows, val_fraction)
        rows = train_rows if split == "train" else val_rows
        if not rows:
            raise CustomerServiceConfigError(
                f"split='val' with val_fraction={val_fraction!r} holds out no rows of {path}: "
                "a category of n distinct texts gives round(val_fraction * n) of them to "
                "validation and keeps at least one for training. Pass a larger val_fraction "
                "(e.g. 0.1 with 5 or more texts per category) or a larger file."
            )
    group_names = list(dict.fromkeys(mapping.values()))
    intents = sorted({category for _, category in rows})
    index = {name: i for i, name in enumerate(intents)}
    templates: list[list[Template]] = [[] for _ in intents]
    for text, category in rows:
        templates[index[category]].append(Template(text))
    return make_bank(
        groups=group_names,
        labels=[_label(g) for g in group_names],
        intents=intents,
        intent_group=[group_names.index(mapping[c]) for c in intents],
        intent_templates=templates,
        split=split,
    )


def dataset_bank(
    path: str | os.PathLike,
    groups: Mapping[str, str] | str | os.PathLike | None = None,
    split: str = "train",
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> UtteranceBank:
    """An :class:`UtteranceBank` whose specific requests are the rows of a CSV file.

    Intents are the categories present in the rows used; resolve actions are the groups of
    the mapping (all of them, present or not, so every file and split shares an action space).
    Results are cached per file (path, size, modification time), mapping, split and fraction.

    Args:
        path: CSV ``text,category``.
        groups: Category -> group mapping (see :func:`load_groups`).
        split: ``"train"``: the rows :func:`validation_split` does not hold out; ``"val"``:
            only the held-out rows; ``"test"``: every row. Also selects the built-in corpus
            split whose vague openings and mood phrases wrap the rows.
        val_fraction: Share of each category held out for ``"val"`` (see
            :func:`validation_split`); unused with ``"test"``.

    Raises:
        CustomerServiceConfigError: If ``split`` or ``val_fraction`` is invalid, or
            ``split="val"`` holds out no rows.
        DatasetNotFoundError: If a file does not exist.
        DatasetFormatError: If a file is malformed.
    """
    check_split(split)
    fraction = check_val_fraction(val_fraction)
    mapping = load_groups(groups)
    resolved = Path(path)
    if not resolved.is_file():
        read_dataset(resolved, mapping)  # raises DatasetNotFoundError
    stat = resolved.stat()
    return _cached_bank(
        str(resolved.resolve()),
        (stat.st_size, stat.st_mtime_ns),
        tuple(mapping.items()),
        split,
        fraction,
    )
