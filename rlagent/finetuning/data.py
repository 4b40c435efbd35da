"""Labelled utterances for fine-tuning: a ``text,category`` CSV, or the built-in corpus.

A CSV is read with :func:`envs.customer_service.dataset.read_dataset` and split with
:func:`~envs.customer_service.dataset.validation_split`, so the validation rows are exactly the
rows the customer-service env's ``split="val"`` uses. ``data="builtin"`` renders the built-in
corpus's specific request templates (the env's training split for training, its val split for
validation, its test split for evaluation), each with a few seeded slot fillings; its labels are
the corpus's intents, whose groups are the env's resolution groups. It lets a sim-to-real
experiment fine-tune without any real text.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.customer_service.corpus import builtin_bank
from envs.customer_service.dataset import load_groups, read_dataset, validation_split
from rlagent.finetuning.errors import FinetuneDataError

__all__ = [
    "BUILTIN",
    "LabelledData",
    "builtin_groups",
    "builtin_rows",
    "describe_source",
    "prepare_data",
    "read_rows",
]

#: The ``data`` value that selects the built-in corpus instead of a CSV.
BUILTIN = "builtin"
Row = tuple[str, str]


class _AnyCategory(Mapping[str, str]):
    """A mapping that contains every category: lets ``read_dataset`` read without a mapping."""

    def __getitem__(self, key: str) -> str:
        return key

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _is_builtin(data: Any) -> bool:
    return isinstance(data, str) and data == BUILTIN


def builtin_groups() -> dict[str, str]:
    """The built-in corpus's intent -> group mapping (the env's 11 resolution groups)."""
    bank = builtin_bank("train")
    return {
        intent: bank.groups[g] for intent, g in zip(bank.intents, bank.intent_group, strict=True)
    }


def builtin_rows(split: str, *, fillings: int = 4, seed: int = 0) -> list[Row]:
    """Labelled utterances rendered from the built-in corpus's specific request templates.

    Args:
        split: The corpus split, ``"train"``, ``"val"`` or ``"test"`` (disjoint templates).
        fillings: Slot fillings drawn per template (duplicates, e.g. of a template without
            slots, are kept once).
        seed: Seed of the slot fillings.

    Returns:
        ``(text, intent)`` pairs, grouped by intent.
    """
    bank = builtin_bank(split)
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    for intent, body_ids in zip(bank.intents, bank.intent_bodies, strict=True):
        for body in dict.fromkeys(body_ids):
            texts = {bank.bodies[body].fill(bank.slot_values, rng) for _ in range(fillings)}
            rows += [(text, intent) for text in sorted(texts)]
    return rows


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_source(data: str | os.PathLike, rows: int, **extra: Any) -> dict[str, Any]:
    """What the model card says about a data source: path, row count, sha256 (of a file)."""
    if _is_builtin(data):
        return {"source": BUILTIN, "rows": rows, **extra}
    path = Path(data)
    return {"source": str(path), "rows": rows, "sha256": _sha256(path), **extra}


def read_rows(
    data: str | os.PathLike | Sequence[Row],
    groups: Mapping[str, str] | None = None,
    *,
    builtin_split: str = "test",
    fillings: int = 4,
    seed: int = 0,
) -> list[Row]:
    """``(text, category)`` rows from a CSV path, ``"builtin"``, or a sequence of pairs.

    Args:
        data: A ``text,category`` CSV, ``"builtin"``, or the rows themselves.
        groups: When given, every category must be in it (the CSV reader's check);
            ``None`` accepts any category.
        builtin_split: Corpus split rendered for ``"builtin"``.
        fillings: Slot fillings per template for ``"builtin"``.
        seed: Seed of the slot fillings for ``"builtin"``.

    Raises:
        DatasetNotFoundError: The CSV does not exist.
        DatasetFormatError: The CSV is malformed (the message names file and line).
        FinetuneDataError: Rows given directly are not ``(text, category)`` string pairs.
    """
    if _is_builtin(data):
        return builtin_rows(builtin_split, fillings=fillings, seed=seed)
    if isinstance(data, str | os.PathLike):
        return read_dataset(data, _AnyCategory() if groups is None else groups)
    rows = [tuple(row) for row in data]
    bad = [r for r in rows if len(r) != 2 or not all(isinstance(x, str) and x for x in r)]
    if bad or not rows:
        raise FinetuneDataError(
            f"data rows must be non-empty (text, category) string pairs; got {bad[:1] or rows!r}. "
            "Pass a CSV path with columns text,category, 'builtin', or such pairs."
        )
    return rows  # type: ignore[return-value]


@dataclass(frozen=True)
class LabelledData:
    """Training and validation rows with their label ids, ready for fine-tuning.

    Attributes:
        train_texts: Training texts.
        train_labels: Label id of each training text, ``[N_train]``.
        val_texts: Validation texts (may be empty).
        val_labels: Label id of each validation text, ``[N_val]``.
        label_names: What each label id means: categories or groups.
        label_kind: ``"category"`` or ``"group"``.
        groups: The category -> group mapping saved with the classifier, or ``None``.
        sources: What the model card says about the data (source, rows, sha256...).
    """

    train_texts: tuple[str, ...]
    train_labels: np.ndarray
    val_texts: tuple[str, ...]
    val_labels: np.ndarray
    label_names: tuple[str, ...]
    label_kind: str
    groups: dict[str, str] | None
    sources: dict[str, Any] = field(default_factory=dict)


def _category_mapping(
    config_groups: Any, label_kind: str, *, builtin: bool
) -> tuple[dict[str, str] | None, bool]:
    """The mapping the rows are checked against, and whether it must cover every category."""
    if builtin:
        if config_groups is not None:
            raise FinetuneDataError(
                "groups= does not apply to data='builtin': its intents map to the env's groups "
                "already. Leave groups=None (drop --groups)."
            )
        return builtin_groups(), True
    if config_groups is not None or label_kind == "group":
        return load_groups(config_groups), True
    return load_groups(None), False  # recorded only if it happens to map every category


def prepare_data(data: str | os.PathLike, config: Any) -> LabelledData:
    """Read, split and label the fine-tuning data of ``config``.

    Args:
        data: A ``text,category`` CSV path, or ``"builtin"``.
        config: The :class:`~rlagent.finetuning.FinetuneConfig`.

    Returns:
        The labelled data.

    Raises:
        DatasetNotFoundError: The CSV (or group mapping file) does not exist.
        DatasetFormatError: The CSV or mapping is malformed.
        FinetuneDataError: Fewer than two labels, or ``groups`` given with ``"builtin"``.
    """
    builtin = _is_builtin(data)
    mapping, required = _category_mapping(config.groups, config.labels, builtin=builtin)
    if builtin:
        train = builtin_rows("train", fillings=config.builtin_fillings, seed=config.seed)
        val = builtin_rows("val", fillings=config.builtin_fillings, seed=config.seed)
        sources = {
            "train": describe_source(data, len(train), split="train"),
            "validation": describe_source(data, len(val), split="val"),
            "builtin_fillings": config.builtin_fillings,
        }
    else:
        rows = read_rows(data, mapping if required else None)
        train, val = validation_split(rows, config.val_fraction)
        sources = {
            "train": describe_source(data, len(rows)),
            "split": {
                "train_rows": len(train),
                "validation_rows": len(val),
                "val_fraction": config.val_fraction,
            },
        }
    categories = sorted({c for _, c in train} | {c for _, c in val})
    if not required and not all(c in mapping for c in categories):
        mapping = None
    if config.labels == "group" and mapping is not None:
        label_names = tuple(dict.fromkeys(mapping.values()))
        target = {c: label_names.index(mapping[c]) for c in categories}
    else:
        label_names = tuple(categories)
        target = {c: i for i, c in enumerate(label_names)}
    if len({target[c] for c in categories}) < 2:
        only = label_names[target[categories[0]]]
        raise FinetuneDataError(
            f"every row of the data has the same {config.labels} ({only!r}); a classifier "
            "needs rows of at least two labels."
        )
    return LabelledData(
        train_texts=tuple(t for t, _ in train),
        train_labels=np.array([target[c] for _, c in train], dtype=np.int64),
        val_texts=tuple(t for t, _ in val),
        val_labels=np.array([target[c] for _, c in val], dtype=np.int64),
        label_names=label_names,
        label_kind=config.labels,
        groups=None if mapping is None else dict(mapping),
        sources=sources,
    )
