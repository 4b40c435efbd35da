"""Bring-your-own data for the customer-service env: Banking77 CSVs and group mappings."""

from __future__ import annotations

import json
import math
import re

import gymnasium as gym
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.customer_service import (
    CustomerServiceEnv,
    DatasetFormatError,
    DatasetNotFoundError,
    load_groups,
    read_dataset,
)
from envs.customer_service._corpus_data import GROUPS


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_mapping_covers_banking77_categories(shared_data):
    categories = json.loads((shared_data / "banking77" / "categories.json").read_text())
    mapping = load_groups(None)
    assert sorted(mapping) == sorted(categories) and len(mapping) == 77
    assert list(dict.fromkeys(mapping.values())) == [g for g, _ in GROUPS]


def test_banking77_train_and_test(shared_data):
    folder = shared_data / "banking77"
    train = CustomerServiceEnv(dataset=folder / "train.csv", split="train")
    test = CustomerServiceEnv(dataset=folder / "test.csv", split="test")
    assert len(train.intents) == 77 and train.action_names == test.action_names
    assert len(train.groups) == 11
    rows = read_dataset(folder / "test.csv", load_groups(None))
    assert len(rows) == 3080
    texts = {text for text, _ in rows}
    obs, info = test.reset(seed=0, options={"vague": False})
    assert info["intent"] in test.intents
    segment = obs["dialogue"][-1]
    assert any(text in segment for text in texts)
    assert math.isfinite(test.log_likelihood(test.get_state()))


def test_groups_as_dict_and_file(tmp_path):
    csv = write(tmp_path / "d.csv", "text,category\nwhere is my card,arrival\nhelp me pay,pay\n")
    env = CustomerServiceEnv(dataset=csv, groups={"arrival": "cards", "pay": "payments"})
    assert env.groups == ("cards", "payments")
    assert env.action_names[:2] == ("resolve_cards", "resolve_payments")
    env.reset(seed=0)
    mapping = write(tmp_path / "g.json", json.dumps({"arrival": "cards", "pay": "cards"}))
    env = gym.make("rlagent/CustomerService-v0", dataset=str(csv), groups=str(mapping))
    assert env.unwrapped.groups == ("cards",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "d.csv, line 1: the file is empty"),
        (
            "words,category\nhi,x\n",
            "d.csv, line 1: header ['words', 'category'] lacks column(s) ['text']",
        ),
        (
            "text,category\nhello,arrival\nhi there,arrival,extra\n",
            "d.csv, line 3: found 3 field(s), expected 2",
        ),
        ("text,category\n   ,arrival\n", "d.csv, line 2: the text field is empty"),
        ("text,category\nhello,\n", "d.csv, line 2: the category field is empty"),
        (
            "text,category\nhello,arrival\nbye,unknown_cat\n",
            "d.csv, line 3: category 'unknown_cat' has no group",
        ),
        ("text,category\n", "d.csv: the file has a header but no rows"),
    ],
)
def test_bad_dataset_files(tmp_path, content, message):
    csv = write(tmp_path / "d.csv", content)
    with pytest.raises(DatasetFormatError, match=re.escape(message)):
        CustomerServiceEnv(dataset=csv, groups={"arrival": "cards"})


def test_non_utf8_dataset(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_bytes(b"text,category\ncaf\xe9,arrival\n")
    with pytest.raises(DatasetFormatError, match=re.escape("not UTF-8 text")):
        read_dataset(csv, {"arrival": "cards"})


def test_missing_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=re.escape("dataset file")):
        CustomerServiceEnv(dataset=tmp_path / "nope.csv")
    csv = write(tmp_path / "d.csv", "text,category\nhello,arrival\n")
    with pytest.raises(DatasetNotFoundError, match=re.escape("group mapping file")):
        CustomerServiceEnv(dataset=csv, groups=tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"arrival": "cards",\n  oops}', "g.json, line 2: not valid JSON"),
        ('["cards"]', "g.json, line 1: expected a JSON object {category: group}, found list"),
        ('{"arrival": 3}', "category 'arrival' maps to 3; expected a non-empty group name"),
        ("{}", "the group mapping is empty"),
    ],
)
def test_bad_group_files(tmp_path, content, message):
    mapping = write(tmp_path / "g.json", content)
    with pytest.raises(DatasetFormatError, match=re.escape(message)):
        load_groups(mapping)


def test_dataset_text_is_cleaned(tmp_path):
    csv = write(tmp_path / "d.csv", 'text,category\n"Caf\u00e9  \u2603 card\nplease",arrival\n')
    rows = read_dataset(csv, {"arrival": "cards"})
    assert rows == [("Cafe card please", "arrival")]
