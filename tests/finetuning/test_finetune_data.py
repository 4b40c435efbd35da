"""The fine-tuning data: CSV rows split exactly as the env splits them, and the built-in corpus."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from conftest import TINY, rows, write_csv

from envs.customer_service.corpus import builtin_bank
from envs.customer_service.dataset import (
    DatasetFormatError,
    DatasetNotFoundError,
    dataset_bank,
    load_groups,
)
from rlagent.finetuning import FinetuneConfig, FinetuneDataError, builtin_groups, builtin_rows
from rlagent.finetuning.data import prepare_data


def _bank_texts(bank) -> set[str]:
    return {bank.bodies[b].text for ids in bank.intent_bodies for b in ids}


def test_validation_rows_are_the_envs_val_rows(train_csv):
    data = prepare_data(train_csv, TINY)
    assert set(data.val_texts) == _bank_texts(dataset_bank(train_csv, split="val"))
    assert set(data.train_texts) == _bank_texts(dataset_bank(train_csv, split="train"))
    assert not set(data.val_texts) & set(data.train_texts)
    assert len(data.val_texts) == 6  # 10% of 20 distinct texts in each of 3 categories


def test_category_labels_and_the_bundled_mapping(train_csv):
    data = prepare_data(train_csv, TINY)
    assert data.label_names == ("change_pin", "lost_or_stolen_card", "request_refund")
    assert data.groups == load_groups(None)  # it maps every category, so it is kept
    names = [data.label_names[i] for i in data.train_labels]
    assert Counter(names) == {name: 18 for name in data.label_names}


def test_group_labels_are_every_group_of_the_mapping(train_csv):
    data = prepare_data(train_csv, FinetuneConfig(encoder="tiny-random", labels="group"))
    groups = load_groups(None)
    assert data.label_names == tuple(dict.fromkeys(groups.values()))
    assert {data.label_names[i] for i in data.train_labels} == {
        "card_security",
        "refunds_charges",
    }


def test_own_categories_without_a_mapping(tmp_path):
    path = write_csv(tmp_path / "own.csv", [("yes please", "ok"), ("no thanks", "nope")])
    data = prepare_data(path, FinetuneConfig(encoder="tiny-random", val_fraction=0.0))
    assert data.label_names == ("nope", "ok") and data.groups is None


def test_builtin_rows_come_from_the_corpus_splits():
    train = builtin_rows("train", fillings=2, seed=0)
    assert train == builtin_rows("train", fillings=2, seed=0)  # seeded
    assert {intent for _, intent in train} == set(builtin_bank("train").intents)
    assert len(train) >= 827  # every specific template of the training split, at least once
    assert not {t for t, _ in train} & {t for t, _ in builtin_rows("val", fillings=2)}
    assert set(builtin_groups().values()) == set(load_groups(None).values())
    data = prepare_data("builtin", FinetuneConfig(encoder="tiny-random", labels="group"))
    assert len(data.label_names) == 11 and data.val_texts
    assert data.sources["validation"]["split"] == "val"


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (None, DatasetNotFoundError, "dataset file "),
        ("txt,category\nhi,a\n", DatasetFormatError, "lacks column(s) ['text']"),
        ("text,category\nhi,a,b\n", DatasetFormatError, "line 2: found 3 field(s), expected 2"),
        ("text,category\nhi,a\nho,a\n", FinetuneDataError, "every row of the data has the same"),
    ],
)
def test_bad_files(tmp_path, content, error, message):
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=re.escape(message)):
        prepare_data(path, FinetuneConfig(encoder="tiny-random"))


def test_a_category_without_a_group(tmp_path):
    path = write_csv(tmp_path / "d.csv", rows(5))
    config = FinetuneConfig(encoder="tiny-random", groups={"request_refund": "refunds"})
    with pytest.raises(DatasetFormatError, match=re.escape("has no group in the group mapping")):
        prepare_data(path, config)


def test_groups_do_not_apply_to_builtin():
    config = FinetuneConfig(encoder="tiny-random", groups={"a": "b"})
    with pytest.raises(FinetuneDataError, match=re.escape("groups= does not apply to data")):
        prepare_data("builtin", config)
