"""evaluate_classifier: scores in range, and the group of each category from the right mapping."""

from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import TINY, rows

from rlagent.finetuning import (
    FinetuneDataError,
    NotAClassifierError,
    evaluate_classifier,
    finetune,
    load_classifier,
)


def _in_range(scores: dict) -> bool:
    return all(0.0 <= v <= 1.0 for k, v in scores.items() if k != "n")


def test_category_classifier_scores(full_output, test_csv):
    result, out = full_output
    scores = evaluate_classifier(out, test_csv)
    assert list(scores) == ["accuracy", "macro_f1", "n", "group_accuracy"]
    assert scores["n"] == 24 and _in_range(scores)
    assert scores == pytest.approx(result.scores["test"])
    assert scores["group_accuracy"] >= scores["accuracy"]  # two categories share a group


def test_rows_can_be_given_directly(full_output):
    _, out = full_output
    classifier = load_classifier(out)
    scores = evaluate_classifier(classifier, rows(2, offset=30))
    assert scores["n"] == 6 and _in_range(scores)


def test_group_classifier_scores_categories_by_their_group(lora_output, test_csv):
    _, out = lora_output
    scores = evaluate_classifier(out, test_csv)
    assert list(scores) == ["accuracy", "macro_f1", "n"] and _in_range(scores)
    with pytest.raises(FinetuneDataError, match=re.escape("has no group for the data's")):
        evaluate_classifier(out, test_csv, groups={"change_pin": "card_security"})
    with pytest.raises(FinetuneDataError, match=re.escape("no known mapping gives the data's")):
        evaluate_classifier(out, [("hello there", "greeting"), ("bye now", "goodbye")])


def test_a_builtin_classifier_is_scored_on_banking77_categories(tmp_path, test_csv):
    config = dataclasses.replace(
        TINY, labels="group", epochs=0, head_epochs=1, builtin_fillings=1, max_length=24
    )
    result = finetune("builtin", tmp_path / "sim", config=config, progress=False)
    assert result.scores["validation"]["n"] > 0
    # Its saved mapping holds the corpus's intents; Banking77 categories use the bundled one.
    scores = evaluate_classifier(tmp_path / "sim", test_csv)
    assert scores["n"] == 24 and _in_range(scores)
    assert evaluate_classifier(tmp_path / "sim", "builtin")["n"] > 0


def test_a_folder_without_a_head(tmp_path, test_csv):
    with pytest.raises(NotAClassifierError, match=re.escape("holds no classifier.json")):
        evaluate_classifier(tmp_path, test_csv)
