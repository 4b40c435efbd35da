"""Built-in customer-service corpus: size, split disjointness, mood tables, wording, corpora."""

from __future__ import annotations

import collections
import itertools
import math
import re

import numpy as np
import pytest

from envs.customer_service import (
    CustomerServiceEnv,
    builtin_bank,
    builtin_intents,
    corpus_statistics,
    iter_openings,
)
from envs.customer_service import _corpus_data as data
from envs.customer_service import _corpus_data_more as data_more
from envs.customer_service.corpus import CORPORA, SPLITS, Template, UtteranceBank
from envs.customer_service.dataset import load_groups
from envs.customer_service.errors import CustomerServiceConfigError

#: Every intent of the built-in corpus: ``intent -> (group, train, val, test templates)``.
ALL_INTENTS = builtin_intents("full")


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("split", SPLITS)
def test_corpus_counts(split, corpus):
    stats = corpus_statistics(split, corpus)
    assert stats["groups"] == 11
    assert stats["intents"] == {"full": 78, "core": 44}[corpus]
    assert stats["openings"] >= 5000
    bank = builtin_bank(split, corpus)
    assert len(set(bank.intent_group)) == len(bank.groups)  # every group has intents
    assert all(len(ids) >= 2 for ids in bank.intent_bodies)


def test_core_is_the_earlier_corpus_and_full_extends_it():
    core, full = builtin_bank("train", "core"), builtin_bank("train", "full")
    assert core.intents == tuple(data.INTENTS) and len(core.intents) == 44
    assert full.intents == (*data.INTENTS, *data_more.INTENTS)
    assert full.intents[:44] == core.intents and full.groups == core.groups
    assert builtin_bank("train") is full  # the default is the full corpus
    assert set(data.INTENTS).isdisjoint(data_more.INTENTS)
    sizes = {
        corpus: [corpus_statistics(split, corpus)["specific_templates"] for split in SPLITS]
        for corpus in CORPORA
    }
    assert sizes == {"core": [827, 88, 88], "full": [827 + 34 * 19, 156, 156]}
    assert all(
        (len(train), len(val), len(test)) == (19, 2, 2)
        for _, train, val, test in data_more.INTENTS.values()
    )


def test_every_category_of_the_bundled_mapping_has_an_intent_in_its_group():
    mapping = load_groups(None)
    assert set(data_more.MAPPING_CATEGORY) == set(ALL_INTENTS)
    assert set(data_more.MAPPING_CATEGORY.values()) == set(mapping)  # all 77 categories
    for intent, (group, *_) in ALL_INTENTS.items():
        assert mapping[data_more.MAPPING_CATEGORY[intent]] == group, intent
    # Only the core intents cover the mapping's categories of earlier releases: 43 of 77.
    core = {data_more.MAPPING_CATEGORY[intent] for intent in data.INTENTS}
    assert len(core) == 43
    assert core.isdisjoint(data_more.MAPPING_CATEGORY[intent] for intent in data_more.INTENTS)


def test_corpus_argument_and_errors():
    assert CustomerServiceEnv().corpus == "full" and len(CustomerServiceEnv().intents) == 78
    core = CustomerServiceEnv(corpus="core", split="test")
    assert core.corpus == "core" and core.intents == tuple(data.INTENTS)
    assert core.bank is builtin_bank("test", "core")
    message = (
        "corpus='all' is not a built-in intent set; expected one of ('full', 'core'). Pass "
        'corpus="full" for every built-in intent (the default) or corpus="core" for the 44 '
        "intents of earlier releases."
    )
    with pytest.raises(CustomerServiceConfigError, match=re.escape(message)):
        CustomerServiceEnv(corpus="all")
    with pytest.raises(CustomerServiceConfigError, match=re.escape(message)):
        builtin_bank("train", "all")
    with pytest.raises(CustomerServiceConfigError, match=re.escape(message)):
        corpus_statistics("train", "all")


def test_splits_are_train_val_test():
    assert SPLITS == ("train", "val", "test")


@pytest.mark.parametrize("split", ["val", "test"])
def test_opening_count_is_the_number_of_distinct_strings(split):
    assert corpus_statistics(split)["openings"] == len(set(iter_openings(builtin_bank(split))))


@pytest.mark.parametrize("corpus", CORPORA)
def test_val_split_has_the_size_of_the_test_split(corpus):
    val, test = corpus_statistics("val", corpus), corpus_statistics("test", corpus)
    for key in ("specific_templates", "vague_templates", "opener_phrases", "closer_phrases"):
        assert val[key] == test[key]
    assert all(len(ids) == 2 for ids in builtin_bank("val", corpus).intent_bodies)


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
    for tables in (ALL_INTENTS.values(), ([None, *pair] for pair in data.VAGUE.values())):
        per_split = [set() for _ in SPLITS]
        for row in tables:
            for index, templates in enumerate(row[1:]):
                assert templates and len(set(templates)) == len(templates)
                per_split[index].update(templates)
        for a, b in itertools.combinations(per_split, 2):
            assert a.isdisjoint(b), a & b


def test_no_template_is_written_twice():
    # Across intents and splits: an exact repeat would make two intents share a body.
    counts = collections.Counter(
        text for _, *splits in ALL_INTENTS.values() for text in itertools.chain(*splits)
    )
    assert not [text for text, n in counts.items() if n > 1]


def test_templates_use_known_slots_and_slots_vary():
    for group, *splits in ALL_INTENTS.values():
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
    names = [*ALL_INTENTS, *(g for g, _ in data.GROUPS)]
    assert all("_" in name for name in names)
    templates = [t for _, *splits in ALL_INTENTS.values() for t in itertools.chain(*splits)]
    assert not any("_" in text for text in templates)
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
