"""Built-in customer-service corpus: size, split disjointness, mood tables, wording."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from envs.customer_service import _corpus_data as data
from envs.customer_service import builtin_bank, corpus_statistics, iter_openings
from envs.customer_service.corpus import SPLITS, Template, UtteranceBank
from envs.customer_service.errors import CustomerServiceConfigError


@pytest.mark.parametrize("split", SPLITS)
def test_corpus_counts(split):
    stats = corpus_statistics(split)
    assert stats["groups"] >= 10
    assert stats["intents"] >= 40
    assert stats["openings"] >= 5000
    bank = builtin_bank(split)
    assert len(set(bank.intent_group)) == len(bank.groups)  # every group has intents
    assert all(len(ids) >= 2 for ids in bank.intent_bodies)


def test_splits_are_train_val_test():
    assert SPLITS == ("train", "val", "test")


@pytest.mark.parametrize("split", ["val", "test"])
def test_opening_count_is_the_number_of_distinct_strings(split):
    assert corpus_statistics(split)["openings"] == len(set(iter_openings(builtin_bank(split))))


def test_val_split_has_the_size_of_the_test_split():
    val, test = corpus_statistics("val"), corpus_statistics("test")
    for key in ("specific_templates", "vague_templates", "opener_phrases", "closer_phrases"):
        assert val[key] == test[key]
    assert all(len(ids) == 2 for ids in builtin_bank("val").intent_bodies)


def _wording(bank):
    """The bank's phrasings by kind: specific and vague templates, opener and closer phrases."""
    return {
        "specific": {bank.bodies[b].text for ids in bank.intent_bodies for b in ids},
        "vague": {bank.bodies[b].text for ids in bank.topic_bodies.values() for b in ids},
        "openers": set(bank.openers.texts) - {""},
        "closers": set(bank.closers.texts) - {""},
    }


@pytest.mark.parametrize("first,second", list(itertools.combinations(SPLITS, 2)))
def test_splits_are_pairwise_disjoint(first, second):
    a, b = builtin_bank(first), builtin_bank(second)
    wording_a, wording_b = _wording(a), _wording(b)
    for kind, texts in wording_a.items():
        assert texts, f"{first} has no {kind}"
        assert texts.isdisjoint(wording_b[kind]), (kind, texts & wording_b[kind])
    assert a.intents == b.intents and a.groups == b.groups


def test_data_tables_are_pairwise_disjoint_per_intent_and_topic():
    # Also across intents: no phrasing of one split appears anywhere in another split.
    for tables in (data.INTENTS.values(), ([None, *pair] for pair in data.VAGUE.values())):
        per_split = [set() for _ in SPLITS]
        for row in tables:
            for index, templates in enumerate(row[1:]):
                assert templates and len(set(templates)) == len(templates)
                per_split[index].update(templates)
        for a, b in itertools.combinations(per_split, 2):
            assert a.isdisjoint(b), a & b


def test_templates_use_known_slots_and_slots_vary():
    for group, *splits in data.INTENTS.values():
        assert group in dict(data.GROUPS) and len(splits) == len(SPLITS)
        for text in itertools.chain(*splits):
            template = Template.parse(text)
            assert set(template.slots) <= set(data.SLOTS)
    slotted = sum(
        bool(Template.parse(t).slots)
        for _, *splits in data.INTENTS.values()
        for t in itertools.chain(*splits)
    )
    assert slotted >= 100
    val_slotted = sum(
        bool(Template.parse(t).slots) for _, _, val, _ in data.INTENTS.values() for t in val
    )
    assert val_slotted >= 40


def test_names_never_appear_in_wording():
    # Names are identifiers with underscores; no wording contains an underscore.
    names = [*data.INTENTS, *(g for g, _ in data.GROUPS)]
    assert all("_" in name for name in names)
    bank = builtin_bank("train")
    sample = list(itertools.islice(iter_openings(builtin_bank("test")), 0, 20000, 7))
    sample += list(itertools.islice(iter_openings(builtin_bank("val")), 0, 20000, 7))
    sample += [t for kind in bank.replies for t in kind]
    assert not any("_" in text for text in sample)


@pytest.mark.parametrize("table", [data.OPENERS, data.CLOSERS])
def test_mood_tables_are_distributions(table):
    assert tuple(table) == SPLITS
    for rows in table.values():
        probs = np.array([p for _, p in rows])
        np.testing.assert_allclose(probs.sum(axis=0), 1.0)
        assert (probs >= 0).all()


def test_log_probabilities_of_bank():
    bank = builtin_bank("train")
    for intent, ids in enumerate(bank.intent_bodies):
        total = sum(math.exp(lp) for lp in bank.specific_log_prob[intent].values())
        assert total == pytest.approx(1.0)
        assert set(bank.specific_log_prob[intent]) == set(ids)
    rng = np.random.default_rng(0)
    body, text = bank.specific(0, rng)
    assert body in bank.intent_bodies[0] and "{" not in text


def test_iter_openings_counts_distinct_strings():
    bank = builtin_bank("train")
    first = list(itertools.islice(iter_openings(bank), 100))
    assert all(isinstance(t, str) and t for t in first)
    assert isinstance(bank, UtteranceBank)


def test_bad_split():
    with pytest.raises(CustomerServiceConfigError, match=re.escape("split='valid' is not")):
        builtin_bank("valid")
