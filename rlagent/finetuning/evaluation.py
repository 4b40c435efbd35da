"""Scoring a fine-tuned classifier on labelled text: accuracy and macro-F1 (numpy only)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from envs.customer_service.dataset import load_groups
from rlagent.finetuning.classifier import TextClassifier, load_classifier
from rlagent.finetuning.config import resolve_device
from rlagent.finetuning.data import builtin_groups, read_rows
from rlagent.finetuning.errors import FinetuneDataError

__all__ = ["accuracy", "classification_scores", "evaluate_classifier", "macro_f1"]


def accuracy(y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray) -> float:
    """Share of positions where ``y_pred`` equals ``y_true`` (0.0 for no rows)."""
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(true == pred)) if true.size else 0.0


def macro_f1(y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray) -> float:
    """Unweighted mean of the per-label F1 over every label in ``y_true`` or ``y_pred``.

    The same as scikit-learn's ``f1_score(average="macro")``: a label's F1 is
    ``2 TP / (2 TP + FP + FN)``, 0 for a label that is predicted but never true (or the
    reverse).

    Args:
        y_true: True labels, ``[N]`` (ints or strings).
        y_pred: Predicted labels, ``[N]``.

    Returns:
        The macro-F1 (0.0 for no rows).
    """
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if not true.size:
        return 0.0
    labels, inverse = np.unique(np.concatenate([true, pred]), return_inverse=True)
    t, p = inverse[: true.size], inverse[true.size :]
    n = len(labels)
    tp = np.bincount(t[t == p], minlength=n)
    fp = np.bincount(p, minlength=n) - tp
    fn = np.bincount(t, minlength=n) - tp
    return float(np.mean(2 * tp / (2 * tp + fp + fn)))


def classification_scores(
    y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray
) -> dict[str, Any]:
    """``{"accuracy", "macro_f1", "n"}`` of predictions."""
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        "n": len(y_true),
    }


def _covers(mapping: Mapping[str, str] | None, names: Sequence[str]) -> bool:
    return mapping is not None and all(name in mapping for name in names)


def _data_mapping(
    classifier: TextClassifier, categories: Sequence[str], groups: Any
) -> dict[str, str] | None:
    """The group of each data category: ``groups``, else the first known mapping that fits."""
    if groups is not None:
        mapping = load_groups(groups)
        missing = sorted({c for c in categories if c not in mapping})
        if missing:
            raise FinetuneDataError(
                f"the group mapping has no group for the data's categories {missing[:5]}; "
                "add them to groups= (--groups FILE)."
            )
        return mapping
    for candidate in (classifier.groups, builtin_groups(), load_groups(None)):
        if _covers(candidate, categories):
            return dict(candidate)  # type: ignore[arg-type]
    return None


def evaluate_classifier(
    classifier: TextClassifier | str | os.PathLike,
    data: str | os.PathLike | Sequence[tuple[str, str]],
    *,
    groups: Mapping[str, str] | str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score a fine-tuned classifier on labelled text.

    A classifier of categories is scored against the data's categories; one of groups against
    each category's group. The group of a data category comes from ``groups`` when given, else
    from the first of these that maps every category of the data: the mapping saved with the
    classifier, the built-in corpus's intents, the bundled Banking77 mapping. A data file
    labelled with the classifier's group names directly needs no mapping.

    Args:
        classifier: A :class:`TextClassifier`, or the folder of one.
        data: A ``text,category`` CSV, ``"builtin"`` (the built-in corpus's test split) or
            ``(text, category)`` pairs.
        groups: Category -> group mapping of the data (a dict or JSON file).
        batch_size: Texts per forward pass.
        device: Where to load a classifier given as a folder: ``"cpu"``, ``"cuda"`` or
            ``"auto"`` (CUDA when available).

    Returns:
        ``{"accuracy", "macro_f1", "n"}``, plus ``"group_accuracy"`` for a classifier of
        categories whose predictions and data both map to groups.

    Raises:
        NotAClassifierError: ``classifier`` is a folder without ``classifier.json``.
        DatasetNotFoundError: The CSV does not exist.
        DatasetFormatError: The CSV is malformed.
        FinetuneDataError: A group classifier meets categories with no known group.
    """
    if not isinstance(classifier, TextClassifier):
        classifier = load_classifier(classifier, device=resolve_device(device))
    rows = read_rows(data)
    texts = [text for text, _ in rows]
    categories = [category for _, category in rows]
    mapping = _data_mapping(classifier, categories, groups)
    predicted = classifier.predict(texts, batch_size=batch_size)
    if classifier.label_kind == "group":
        if _covers(dict.fromkeys(classifier.labels), categories):
            truth = categories  # the file is labelled with groups
        elif mapping is not None:
            truth = [mapping[c] for c in categories]
        else:
            unknown = sorted(set(categories) - set(classifier.labels))
            raise FinetuneDataError(
                f"the classifier predicts groups, and no known mapping gives the data's "
                f"categories {unknown[:5]} a group; pass groups= (--groups FILE), a JSON "
                "object {category: group}."
            )
        return classification_scores(truth, predicted)
    scores = classification_scores(categories, predicted)
    label_groups = next(
        (m for m in (classifier.groups, mapping) if _covers(m, classifier.labels)), None
    )
    if label_groups is not None and mapping is not None:
        scores["group_accuracy"] = accuracy(
            [mapping[c] for c in categories], [label_groups[p] for p in predicted]
        )
    return scores
