"""Customer wording: templates with slots, mood phrases, and the built-in banking corpus.

An :class:`UtteranceBank` is everything the simulated customer can say: specific requests per
intent (templates with slots, or dataset rows), vague openings per topic, mood phrases put
before and after a request, and short replies. The environment draws every utterance from a
bank, and uses the same bank to score how likely a transcript is under a hypothesised hidden
state (:meth:`CustomerServiceEnv.log_likelihood`).

:func:`builtin_bank` compiles the built-in corpus for one split and one intent set
(:data:`CORPORA`): ``"full"``, every intent (``_corpus_data`` and ``_corpus_data_more``), or
``"core"``, the 44 intents of earlier releases (``_corpus_data`` alone). The train, val and
test splits share intents and groups but no templates or mood phrases. Train is for learning,
val (validation) for every choice (the best checkpoint, hyperparameters, variants), test for a
config's final figure.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import string
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from envs.customer_service import _corpus_data as data
from envs.customer_service import _corpus_data_more as data_more
from envs.customer_service.errors import CustomerServiceConfigError

__all__ = [
    "CORPORA",
    "DEFAULT_CORPUS",
    "MOODS",
    "SPLITS",
    "Template",
    "UtteranceBank",
    "builtin_bank",
    "builtin_intents",
    "corpus_statistics",
    "iter_openings",
]

#: Customer moods, in order of increasing upset; a state stores the index.
MOODS: tuple[str, ...] = ("calm", "frustrated", "angry")
#: Corpus splits (training, validation, test); their templates and mood phrases are disjoint.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Built-in intent sets: every intent, or the 44 intents of earlier releases (their figures).
CORPORA: tuple[str, ...] = ("full", "core")
#: The intent set an env without ``dataset=`` uses when ``corpus`` is not given.
DEFAULT_CORPUS: str = "full"
#: Kinds of customer reply besides requests (see ``_corpus_data.REPLIES``).
REPLY_KINDS: tuple[str, ...] = ("complaint", "ack", "leave", "thanks", "handoff")

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class Template:
    """One phrasing; ``{slot}`` fields are filled from the bank's slot values.

    Attributes:
        text: The phrasing, e.g. ``"My {card} card was declined at {merchant}."``; a literal
            (``slots == ()``) is used as is, braces included.
        slots: Names of the slots in order of appearance.
    """

    text: str
    slots: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Template:
        """Build a template from a format string, finding its slot names."""
        slots = tuple(name for _, name, _, _ in _FORMATTER.parse(text) if name)
        return cls(text, slots)

    def fill(self, slot_values: Mapping[str, Sequence[str]], rng: np.random.Generator) -> str:
        """The phrasing with each slot replaced by a value drawn uniformly by ``rng``."""
        if not self.slots:
            return self.text
        values = {}
        for name in self.slots:
            options = slot_values[name]
            values[name] = options[int(rng.random() * len(options))]
        return self.text.format_map(values)


def _log(p: float) -> float:
    return math.log(p) if p > 0.0 else -math.inf


class _MoodPhrases:
    """Phrases with per-mood probabilities: sampling by mood and log-probabilities."""

    def __init__(self, table: Sequence[tuple[str, Sequence[float]]]) -> None:
        self.texts: tuple[str, ...] = tuple(text for text, _ in table)
        self.log_probs: tuple[tuple[float, ...], ...] = tuple(
            tuple(_log(p[mood]) for _, p in table) for mood in range(len(MOODS))
        )
        self._cumulative: list[list[float]] = []
        for mood in range(len(MOODS)):
            cum = list(itertools.accumulate(p[mood] for _, p in table))
            self._cumulative.append([c / cum[-1] for c in cum])

    def sample(self, mood: int, rng: np.random.Generator) -> int:
        cum = self._cumulative[mood]
        return min(bisect.bisect_right(cum, rng.random()), len(cum) - 1)


class UtteranceBank:
    """Everything a simulated customer can say, with the probabilities the simulator uses.

    Bodies (request wordings) are numbered: ``bodies[i]`` is a :class:`Template`. Each intent
    has a list of body ids it draws from uniformly (a dataset row repeated ``n`` times appears
    ``n`` times), and each topic a list of vague body ids.

    Args:
        groups: Resolution group names, in action order.
        labels: What the agent calls each group when resolving ("card delivery").
        intents: Intent names.
        intent_group: Group index of each intent.
        bodies: All request wordings (specific and vague).
        intent_bodies: For each intent, the body ids of its specific requests.
        topic_bodies: Topic -> body ids of its vague openings.
        group_topic: Topic of each group.
        slot_values: Slot name -> values.
        openers: Mood phrase table said before a request: ``(phrase, (p_calm, p_frus, p_angry))``.
        closers: Mood phrase table said after a request.
        replies: Reply kind -> phrasings (see ``REPLY_KINDS``).
    """

    def __init__(
        self,
        *,
        groups: Sequence[str],
        labels: Sequence[str],
        intents: Sequence[str],
        intent_group: Sequence[int],
        bodies: Sequence[Template],
        intent_bodies: Sequence[Sequence[int]],
        topic_bodies: Mapping[str, Sequence[int]],
        group_topic: Sequence[str],
        slot_values: Mapping[str, Sequence[str]],
        openers: Sequence[tuple[str, Sequence[float]]],
        closers: Sequence[tuple[str, Sequence[float]]],
        replies: Mapping[str, Sequence[str]],
    ) -> None:
        self.groups = tuple(groups)
        self.labels = tuple(labels)
        self.intents = tuple(intents)
        self.intent_group = tuple(int(g) for g in intent_group)
        self.intent_index = {name: i for i, name in enumerate(self.intents)}
        #: The intent indices of each group (empty for a group no intent of the bank belongs to).
        self.group_intents: tuple[tuple[int, ...], ...] = tuple(
            tuple(i for i, g in enumerate(self.intent_group) if g == k)
            for k in range(len(self.groups))
        )
        self.bodies = tuple(bodies)
        self.intent_bodies = tuple(tuple(b) for b in intent_bodies)
        self.topic_bodies = {k: tuple(v) for k, v in topic_bodies.items()}
        self.group_topic = tuple(group_topic)
        self.slot_values = {k: tuple(v) for k, v in slot_values.items()}
        self.openers = _MoodPhrases(openers)
        self.closers = _MoodPhrases(closers)
        self.replies = tuple(tuple(replies[kind]) for kind in REPLY_KINDS)
        # log P(body | intent) for specific requests and for vague openings.
        self.specific_log_prob: tuple[dict[int, float], ...] = tuple(
            {b: math.log(n / len(ids)) for b, n in Counter(ids).items()}
            for ids in self.intent_bodies
        )
        self.vague_log_prob: tuple[dict[int, float], ...] = tuple(
            {b: -math.log(len(self.topic_bodies[t])) for b in self.topic_bodies[t]}
            for t in (self.group_topic[g] for g in self.intent_group)
        )
        self.reply_log_prob: tuple[float, ...] = tuple(-math.log(len(r)) for r in self.replies)
        self._intent_topic_bodies = tuple(
            self.topic_bodies[self.group_topic[g]] for g in self.intent_group
        )

    def specific(self, intent: int, rng: np.random.Generator) -> tuple[int, str]:
        """Draw a specific request of ``intent``: ``(body id, text)``."""
        ids = self.intent_bodies[intent]
        body = ids[int(rng.random() * len(ids))]
        return body, self.bodies[body].fill(self.slot_values, rng)

    def vague(self, intent: int, rng: np.random.Generator) -> tuple[int, str]:
        """Draw a vague opening for the topic of ``intent``'s group: ``(body id, text)``."""
        ids = self._intent_topic_bodies[intent]
        body = ids[int(rng.random() * len(ids))]
        return body, self.bodies[body].fill(self.slot_values, rng)

    def reply(self, kind: int, rng: np.random.Generator) -> tuple[int, str]:
        """Draw a reply of kind ``REPLY_KINDS[kind]``: ``(reply id, text)``."""
        options = self.replies[kind]
        index = int(rng.random() * len(options))
        return index, options[index]


def _topic_of_groups(groups: Sequence[str]) -> tuple[str, ...]:
    topic_of = {g: topic for topic, members in data.TOPICS.items() for g in members}
    return tuple(topic_of.get(g, "general") for g in groups)


def check_split(split: str) -> None:
    """Raise :class:`CustomerServiceConfigError` unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise CustomerServiceConfigError(
            f"split={split!r} is not a corpus split; expected one of {SPLITS}. Pass "
            'split="train" for training, split="val" for evaluations that choose (best model, '
            'tuning, variants) and split="test" for the final figure.'
        )


def check_corpus(corpus: str) -> None:
    """Raise :class:`CustomerServiceConfigError` unless ``corpus`` is one of :data:`CORPORA`."""
    if corpus not in CORPORA:
        raise CustomerServiceConfigError(
            f"corpus={corpus!r} is not a built-in intent set; expected one of {CORPORA}. Pass "
            'corpus="full" for every built-in intent (the default) or corpus="core" for the 44 '
            "intents of earlier releases."
        )


def builtin_intents(
    corpus: str = DEFAULT_CORPUS,
) -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """The built-in intents of ``corpus``: ``intent -> (group, train, val, test templates)``.

    ``"core"`` gives the 44 intents of earlier releases, in their order; ``"full"`` gives
    them followed by the intents of ``_corpus_data_more``.

    Raises:
        CustomerServiceConfigError: If ``corpus`` is not one of :data:`CORPORA`.
    """
    check_corpus(corpus)
    if corpus == "core":
        return dict(data.INTENTS)
    return {**data.INTENTS, **data_more.INTENTS}


def wording_tables(split: str) -> dict[str, object]:
    """Vague openings, mood phrases and replies of ``split`` (shared by every bank)."""
    index = SPLITS.index(split)
    return {
        "vague": {topic: pair[index] for topic, pair in data.VAGUE.items()},
        "openers": data.OPENERS[split],
        "closers": data.CLOSERS[split],
        "replies": data.REPLIES,
        "slot_values": data.SLOTS,
    }


def make_bank(
    *,
    groups: Sequence[str],
    labels: Sequence[str],
    intents: Sequence[str],
    intent_group: Sequence[int],
    intent_templates: Sequence[Sequence[Template]],
    split: str,
) -> UtteranceBank:
    """Assemble a bank from specific wordings per intent plus the split's shared wording."""
    check_split(split)
    tables = wording_tables(split)
    bodies: list[Template] = []
    body_id: dict[Template, int] = {}

    def add(template: Template) -> int:
        if template not in body_id:
            body_id[template] = len(bodies)
            bodies.append(template)
        return body_id[template]

    intent_bodies = [[add(t) for t in templates] for templates in intent_templates]
    group_topic = _topic_of_groups(groups)
    topic_bodies: dict[str, list[int]] = {}
    for topic in sorted(set(group_topic)):
        topic_bodies[topic] = [add(Template.parse(text)) for text in tables["vague"][topic]]
    return UtteranceBank(
        groups=groups,
        labels=labels,
        intents=intents,
        intent_group=intent_group,
        bodies=bodies,
        intent_bodies=intent_bodies,
        topic_bodies=topic_bodies,
        group_topic=group_topic,
        slot_values=tables["slot_values"],
        openers=tables["openers"],
        closers=tables["closers"],
        replies=tables["replies"],
    )


def builtin_bank(split: str = "train", corpus: str = DEFAULT_CORPUS) -> UtteranceBank:
    """The built-in banking corpus for ``split`` (one of :data:`SPLITS`), compiled once.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        corpus: ``"full"`` (every built-in intent) or ``"core"`` (the 44 intents of earlier
            releases); see :data:`CORPORA`.

    Raises:
        CustomerServiceConfigError: If ``split`` is not a corpus split or ``corpus`` not an
            intent set.
    """
    check_split(split)
    check_corpus(corpus)
    return _compiled_bank(split, corpus)


@functools.cache
def _compiled_bank(split: str, corpus: str) -> UtteranceBank:
    table = builtin_intents(corpus)
    index = SPLITS.index(split)
    groups = [g for g, _ in data.GROUPS]
    labels = [label for _, label in data.GROUPS]
    intents = list(table)
    intent_group = [groups.index(table[i][0]) for i in intents]
    templates = [[Template.parse(t) for t in table[i][1 + index]] for i in intents]
    return make_bank(
        groups=groups,
        labels=labels,
        intents=intents,
        intent_group=intent_group,
        intent_templates=templates,
        split=split,
    )


def _expand(template: Template, slot_values: Mapping[str, Sequence[str]]) -> Iterator[str]:
    if not template.slots:
        yield template.text
        return
    names = list(dict.fromkeys(template.slots))
    for combo in itertools.product(*(slot_values[n] for n in names)):
        yield template.text.format_map(dict(zip(names, combo, strict=True)))


def _request_body_ids(bank: UtteranceBank) -> list[int]:
    """Ids of every request body: specific ones, then vague ones, each sorted."""
    body_ids = sorted({b for ids in bank.intent_bodies for b in ids})
    return body_ids + sorted({b for ids in bank.topic_bodies.values() for b in ids})


def iter_openings(bank: UtteranceBank) -> Iterator[str]:
    """Every opening message the bank can produce (specific and vague, all moods).

    The stream is lazy and may repeat strings; count distinct ones with a set.
    """
    opener_texts = bank.openers.texts
    closer_texts = bank.closers.texts
    for body in _request_body_ids(bank):
        for request in _expand(bank.bodies[body], bank.slot_values):
            for opener in opener_texts:
                for closer in closer_texts:
                    yield " ".join(part for part in (opener, request, closer) if part)


def corpus_statistics(split: str = "train", corpus: str = DEFAULT_CORPUS) -> dict[str, int]:
    """Counts describing a built-in corpus split: groups, intents, templates, phrases, openings.

    ``specific_templates`` and ``vague_templates`` count phrasings (before slots are filled);
    ``opener_phrases`` and ``closer_phrases`` count the split's non-empty mood phrases (a
    request may also come without one). ``openings`` is the number of different opening
    messages: distinct filled requests (specific and vague) times opener phrases times closer
    phrases, the empty phrase included. Every combination is a different string (a test
    compares this with the distinct strings of :func:`iter_openings`), and counting them this
    way needs no enumeration.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        corpus: ``"full"`` or ``"core"`` (see :func:`builtin_bank`).

    Raises:
        CustomerServiceConfigError: If ``split`` is not a corpus split or ``corpus`` not an
            intent set.
    """
    bank = builtin_bank(split, corpus)
    requests = {
        r for b in _request_body_ids(bank) for r in _expand(bank.bodies[b], bank.slot_values)
    }
    return {
        "groups": len(bank.groups),
        "intents": len(bank.intents),
        "specific_templates": sum(len(ids) for ids in bank.intent_bodies),
        "vague_templates": sum(len(ids) for ids in bank.topic_bodies.values()),
        "opener_phrases": sum(bool(text) for text in bank.openers.texts),
        "closer_phrases": sum(bool(text) for text in bank.closers.texts),
        "openings": len(requests) * len(bank.openers.texts) * len(bank.closers.texts),
    }
