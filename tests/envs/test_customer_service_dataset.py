"""Bring-your-own data for the customer-service env: Banking77 CSVs and group mappings."""

from __future__ import annotations

import collections
import json
import math
import random
import re

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.customer_service import (
    CustomerServiceConfigError,
    CustomerServiceEnv,
    DatasetFormatError,
    DatasetNotFoundError,
    load_groups,
    read_dataset,
    validation_split,
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


def _bank_texts(env):
    bank = env.unwrapped.bank
    return collections.Counter(bank.bodies[b].text for ids in bank.intent_bodies for b in ids)


def test_banking77_validation_part(shared_data):
    folder = shared_data / "banking77"
    rows = read_dataset(folder / "train.csv", load_groups(None))
    train = CustomerServiceEnv(dataset=folder / "train.csv", split="train")
    val = CustomerServiceEnv(dataset=folder / "train.csv", split="val")
    train_texts, val_texts = _bank_texts(train), _bank_texts(val)
    assert set(train_texts).isdisjoint(val_texts)
    assert train_texts + val_texts == collections.Counter(text for text, _ in rows)
    assert len(train.intents) == len(val.intents) == 77
    assert sum(val_texts.values()) == pytest.approx(0.1 * len(rows), abs=77 / 2)
    assert val.action_names == train.action_names
    val.reset(seed=0)
    assert math.isfinite(val.log_likelihood(val.get_state()))


def _rows():
    """Categories of 40, 23, 7, 4 and 1 distinct texts; some texts repeated."""
    rows = []
    for category, size in (("big", 40), ("mid", 23), ("small", 7), ("tiny", 4), ("one", 1)):
        rows += [(f"{category} request number {i}", category) for i in range(size)]
    rows += [("big request number 3", "big"), ("mid request number 5", "mid")] * 2
    return rows


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_validation_split_is_a_stratified_partition(fraction):
    rows = _rows()
    train, val = validation_split(rows, fraction)
    assert collections.Counter(train) + collections.Counter(val) == collections.Counter(rows)
    assert {text for text, _ in train}.isdisjoint(text for text, _ in val)
    for category in {c for _, c in rows}:
        n = len({t for t, c in rows if c == category})
        held = len({t for t, c in val if c == category})
        kept = len({t for t, c in train if c == category})
        assert held + kept == n and kept >= 1
        assert held == min(math.floor(fraction * n + 0.5), n - 1)
        assert abs(held - fraction * n) <= 0.5 or held == n - 1


def test_validation_split_keeps_small_categories_whole_and_zero_holds_out_nothing():
    train, val = validation_split(_rows(), 0.1)
    assert {c for _, c in val} == {"big", "mid", "small"}  # 4 texts or fewer: too small at 0.1
    assert validation_split(_rows(), 0.0) == (_rows(), [])


def test_validation_split_is_independent_of_row_order():
    rows = _rows()
    shuffled = list(rows)
    random.Random(0).shuffle(shuffled)
    train, val = validation_split(rows, 0.2)
    train_s, val_s = validation_split(shuffled, 0.2)
    assert collections.Counter(train) == collections.Counter(train_s)
    assert collections.Counter(val) == collections.Counter(val_s)
    assert val_s == [row for row in shuffled if row in set(val)]  # file order kept


def _write_rows(path, rows):
    lines = ["text,category", *(f"{text},{category}" for text, category in rows)]
    return write(path, "\n".join(lines) + "\n")


def test_env_splits_of_a_dataset(tmp_path):
    rows = _rows()
    groups = {c: "cards" if c in ("big", "tiny") else "payments" for _, c in rows}
    csv = _write_rows(tmp_path / "d.csv", rows)
    shuffled = list(rows)
    random.Random(1).shuffle(shuffled)
    csv_shuffled = _write_rows(tmp_path / "shuffled.csv", shuffled)
    train_rows, val_rows = validation_split(rows, 0.25)
    envs_by_split = {
        split: CustomerServiceEnv(dataset=csv, groups=groups, split=split, val_fraction=0.25)
        for split in ("train", "val", "test")
    }
    assert _bank_texts(envs_by_split["train"]) == collections.Counter(t for t, _ in train_rows)
    assert _bank_texts(envs_by_split["val"]) == collections.Counter(t for t, _ in val_rows)
    assert _bank_texts(envs_by_split["test"]) == collections.Counter(t for t, _ in rows)
    assert envs_by_split["val"].intents == ("big", "mid", "small", "tiny")
    assert len({env.action_names for env in envs_by_split.values()}) == 1
    reordered = CustomerServiceEnv(
        dataset=csv_shuffled, groups=groups, split="val", val_fraction=0.25
    )
    assert _bank_texts(reordered) == _bank_texts(envs_by_split["val"])
    default = CustomerServiceEnv(dataset=csv, groups=groups, split="val")
    assert _bank_texts(default) == collections.Counter(t for t, _ in validation_split(rows)[1])
    everything = CustomerServiceEnv(dataset=csv, groups=groups, val_fraction=0)
    assert _bank_texts(everything) == _bank_texts(envs_by_split["test"])
    env = envs_by_split["val"]
    env.reset(seed=0)
    assert math.isfinite(env.log_likelihood(env.get_state()))


def test_corpus_is_not_allowed_with_a_dataset(tmp_path):
    csv = _write_rows(tmp_path / "d.csv", _rows())
    groups = {c: "g" for _, c in _rows()}
    assert CustomerServiceEnv(dataset=csv, groups=groups).corpus is None
    message = (
        "corpus='core' was given with dataset=; corpus picks built-in intents and a dataset's "
        "categories replace them, so pass one or the other."
    )
    with pytest.raises(CustomerServiceConfigError, match=re.escape(message)):
        CustomerServiceEnv(dataset=csv, groups=groups, corpus="core")


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5, "0.1", True, None])
def test_bad_val_fraction(tmp_path, fraction):
    csv = _write_rows(tmp_path / "d.csv", _rows())
    message = f"val_fraction={fraction!r} must be a number in [0, 1): the share of each"
    with pytest.raises(CustomerServiceConfigError, match=re.escape(message)):
        CustomerServiceEnv(dataset=csv, groups={c: "g" for _, c in _rows()}, val_fraction=fraction)
    with pytest.raises(CustomerServiceConfigError, match=re.escape(message)):
        validation_split(_rows(), fraction)


@pytest.mark.parametrize("fraction", [0.0, 0.05])
def test_val_split_without_held_out_rows(tmp_path, fraction):
    rows = [(f"text {i}", "tiny") for i in range(4)]
    csv = _write_rows(tmp_path / "d.csv", rows)
    with pytest.raises(
        CustomerServiceConfigError,
        match=re.escape(f"split='val' with val_fraction={fraction!r} holds out no rows of"),
    ):
        CustomerServiceEnv(dataset=csv, groups={"tiny": "g"}, split="val", val_fraction=fraction)
    env = CustomerServiceEnv(dataset=csv, groups={"tiny": "g"}, val_fraction=fraction)
    assert sum(_bank_texts(env).values()) == 4


def test_excel_csv_with_a_byte_order_mark(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_bytes(b"\xef\xbb\xbftext,category\r\nwhere is my card,arrival\r\n")
    assert read_dataset(csv, {"arrival": "cards"}) == [("where is my card", "arrival")]
    mapping = tmp_path / "g.json"
    mapping.write_bytes(b'\xef\xbb\xbf{"arrival": "cards"}')
    assert load_groups(mapping) == {"arrival": "cards"}


def test_invalid_utf8_names_its_line_far_into_the_file(tmp_path):
    csv = tmp_path / "d.csv"
    rows = b"".join(b"where is my card number %d,arrival\n" % i for i in range(3000))
    csv.write_bytes(b"text,category\n" + rows + b"caf\xe9 card,arrival\n")
    message = f"{csv}, line 3002: not UTF-8 text (byte 0xe9, byte 4 of the line)"
    with pytest.raises(DatasetFormatError, match=re.escape(message)):
        read_dataset(csv, {"arrival": "cards"})
    bad_json = tmp_path / "g.json"
    bad_json.write_bytes(b'{\n"arrival": "caf\xe9"}')
    with pytest.raises(DatasetFormatError, match=re.escape("g.json, line 2: not UTF-8 text")):
        load_groups(bad_json)


def test_rows_in_another_script_are_text(tmp_path):
    arabic = "\u0623\u064a\u0646 \u0628\u0637\u0627\u0642\u062a\u064a\u061f"  # "where is my card?"
    csv = write(tmp_path / "d.csv", f"text,category\n{arabic},arrival\nhello,arrival\n")
    assert read_dataset(csv, {"arrival": "cards"})[0] == (arabic, "arrival")
    cards = "\u0628\u0637\u0627\u0642\u0627\u062a"
    env = CustomerServiceEnv(dataset=csv, groups={"arrival": cards})
    for seed in range(6):
        obs, _ = env.reset(seed=seed, options={"vague": False})
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(0)
        assert env.observation_space.contains(obs)
    made = gym.make("rlagent/CustomerService-v0", dataset=str(csv), groups={"arrival": cards})
    check_env(made.unwrapped)
    emoji = write(tmp_path / "e.csv", "text,category\n\U0001f4b3\u2603,arrival\n")
    with pytest.raises(
        DatasetFormatError, match=re.escape("line 2: the text field '\U0001f4b3\u2603' holds no")
    ):
        read_dataset(emoji, {"arrival": "cards"})
