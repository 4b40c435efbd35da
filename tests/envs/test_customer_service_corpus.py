"""Built-in customer-service corpus: size, split disjointness, mood tables, wording."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from envs.customer_service import _corpus_data as data
from envs.customer_service import builtin_bank, corpus_statistics, iter_openings
from envs.customer_service.corpus import Template, UtteranceBank
from envs.customer_service.errors import CustomerServiceConfigError


@pytest.mark.parametrize("split", ["train", "test"])
def test_corpus_counts(split):
    stats = corpus_statistics(split)
    assert stats["groups"] >= 10
    assert stats["intents"] >= 40
    assert stats["openings"] >= 5000
    bank = builtin_bank(split)
    assert len(set(bank.intent_group)) == len(bank.groups)  # every group has intents
    assert all(len(ids) >= 2 for ids in bank.intent_bodies)


def test_opening_count_is_the_number_of_distinct_strings():
    assert corpus_statistics("test")["openings"] == len(set(iter_openings(builtin_bank("test"))))


def test_train_and_test_templates_are_disjoint():
    train, test = builtin_bank("train"), builtin_bank("test")
    train_templates = {train.bodies[b].text for ids in train.intent_bodies for b in ids}
    test_templates = {test.bodies[b].text for ids in test.intent_bodies for b in ids}
    assert train_templates.isdisjoint(test_templates)
    vague_train = {train.bodies[b].text for ids in train.topic_bodies.values() for b in ids}
    vague_test = {test.bodies[b].text for ids in test.topic_bodies.values() for b in ids}
    assert vague_train.isdisjoint(vague_test)
    assert set(train.openers.texts) - {""} and (
        (set(train.openers.texts) - {""}).isdisjoint(set(test.openers.texts) - {""})
    )
    assert (set(train.closers.texts) - {""}).isdisjoint(set(test.closers.texts) - {""})
    assert train.intents == test.intents and train.groups == test.groups


def test_templates_use_known_slots_and_slots_vary():
    for group, train, test in data.INTENTS.values():
        assert group in dict(data.GROUPS)
        for text in (*train, *test):
            template = Template.parse(text)
            assert set(template.slots) <= set(data.SLOTS)
    slotted = sum(
        bool(Template.parse(t).slots) for _, tr, te in data.INTENTS.values() for t in (*tr, *te)
    )
    assert slotted >= 100


def test_names_never_appear_in_wording():
    # Names are identifiers with underscores; no wording contains an underscore.
    names = [*data.INTENTS, *(g for g, _ in data.GROUPS)]
    assert all("_" in name for name in names)
    bank = builtin_bank("train")
    sample = list(itertools.islice(iter_openings(builtin_bank("test")), 0, 20000, 7))
    sample += [t for kind in bank.replies for t in kind]
    assert not any("_" in text for text in sample)


@pytest.mark.parametrize("table", [data.OPENERS, data.CLOSERS])
def test_mood_tables_are_distributions(table):
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
