"""Item catalogues for the recommendation environment, generated or read from a CSV file.

Catalogues are generated from the bundled topic vocabularies or read from a user's CSV file.

A :class:`Catalog` holds, per item, its text (what the agent reads), its topic, its hidden quality
and a popularity figure a real recommender would know (``log10(1 + views)``).

Generated catalogues follow RecSim's interest-evolution documents: topics are spread evenly over
the items, the topic mean quality is ``linspace(-3, 0, n_low)`` for the 70% "low-quality" topics
and ``linspace(0, 3, n_high)`` for the rest, and an item's quality is drawn from
``Normal(topic mean, 0.1)``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envs._text import TextFileError, clean_text, read_utf8
from envs.recommendation.vocabulary import (
    N_HIGH_QUALITY_TOPICS,
    N_LOW_QUALITY_TOPICS,
    QUALITY_CUES,
    TOPICS,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "generate_catalog",
    "load_catalog",
    "topic_quality_means",
    "COLUMN_ALIASES",
]

#: Standard deviation of an item's quality around its topic mean (RecSim: 0.1).
QUALITY_STD: float = 0.1
#: Accepted CSV column names for each catalogue field (first match wins, case-insensitive).
COLUMN_ALIASES: Mapping[str, tuple[str, ...]] = {
    "title": ("title",),
    "description": ("description", "summary", "authors", "author"),
    "topic": ("topic", "category", "genre"),
    "quality": ("quality",),
    "rating": ("rating", "average_rating"),
    "popularity": ("popularity", "ratings_count", "views"),
}
_HASH_DIMS = 512
_KMEANS_ITERATIONS = 25
_STOPWORDS = frozenset(
    "the and for with from that this into over your you are was were has have not but its".split()
    + "of a an in on at to by or as is it be".split()
)
_WORD = re.compile(r"[^\W\d_]+")  # words of letters, in any script


class CatalogError(ValueError):
    """A catalogue file or catalogue setting cannot be used."""


@dataclass(frozen=True, eq=False)
class Catalog:
    """A fixed set of recommendable items.

    Attributes:
        texts: Item texts, ``[n_items]``, inside :data:`envs._text.CHARSET` for a generated
            catalogue; a file's texts keep the letters of any script (see :func:`load_catalog`).
        topics: Topic id of each item, int64 ``[n_items]`` in ``[0, n_topics)``.
        quality: Hidden quality of each item, float64 ``[n_items]`` (RecSim scale, about -3..3).
        popularity: ``log10(1 + views)`` of each item, float32 ``[n_items]`` (0 when unknown).
        topic_names: Display name of each topic, ``[n_topics]``.
        topic_quality: Mean quality of each topic, float64 ``[n_topics]``.
        source: Where the catalogue came from (a file path or ``"generated"``).
        skipped_lines: CSV line numbers of rows skipped because their title held no letter,
            digit or punctuation mark (only emoji or control characters, say).
    """

    texts: tuple[str, ...]
    topics: np.ndarray
    quality: np.ndarray
    popularity: np.ndarray
    topic_names: tuple[str, ...]
    topic_quality: np.ndarray
    source: str = "generated"
    skipped_lines: tuple[int, ...] = ()
    _text_topic: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for array in (self.topics, self.quality, self.popularity, self.topic_quality):
            array.flags.writeable = False
        for i in range(len(self.texts) - 1, -1, -1):
            self._text_topic[self.texts[i]] = int(self.topics[i])

    @property
    def n_items(self) -> int:
        """Number of items."""
        return len(self.texts)

    @property
    def n_topics(self) -> int:
        """Number of topics."""
        return len(self.topic_names)

    def topic_of_text(self, text: str) -> int:
        """The topic of the (first) item with this text, or -1 for an unknown text."""
        return self._text_topic.get(text, -1)


def topic_quality_means(n_topics: int) -> np.ndarray:
    """RecSim's topic mean qualities: 70% of topics from -3 to 0, the rest from 0 to 3.

    Args:
        n_topics: Number of topics (>= 2).

    Returns:
        float64 ``[n_topics]``, ascending.
    """
    n_low = min(n_topics - 1, max(1, round(0.7 * n_topics)))
    return np.concatenate([np.linspace(-3.0, 0.0, n_low), np.linspace(0.0, 3.0, n_topics - n_low)])


def _topic_vocabularies(n_topics: int) -> list[int]:
    """Indices into TOPICS for ``n_topics`` topics, keeping the 70/30 quality split."""
    n_low = min(n_topics - 1, max(1, round(0.7 * n_topics)))
    n_high = n_topics - n_low
    if n_low > N_LOW_QUALITY_TOPICS or n_high > N_HIGH_QUALITY_TOPICS:
        raise CatalogError(
            f"n_topics={n_topics} needs {n_low} low-quality and {n_high} high-quality topic "
            f"vocabularies, but the generated catalogue has {N_LOW_QUALITY_TOPICS} and "
            f"{N_HIGH_QUALITY_TOPICS}; use n_topics <= {len(TOPICS)} or pass catalog=PATH"
        )
    low = np.linspace(0, N_LOW_QUALITY_TOPICS - 1, n_low).round().astype(int)
    high = N_LOW_QUALITY_TOPICS + np.linspace(0, N_HIGH_QUALITY_TOPICS - 1, n_high).round()
    return [int(i) for i in low] + [int(i) for i in high.astype(int)]


def generate_catalog(
    *,
    n_topics: int = 20,
    n_items: int = 1000,
    cue_noise: float = 0.3,
    max_text_length: int = 128,
    rng: np.random.Generator,
) -> Catalog:
    """Write a catalogue of items from the bundled topic vocabularies.

    Item ``i`` has topic ``i % n_topics``. Its text is ``"<cue>: <subject> <format> - <topic>"``;
    the cue comes from the item's quality tier (quality < -1: low, > 1: high, else middling),
    except that with probability ``cue_noise`` the tier is drawn uniformly at random instead.
    Views are ``exp(Normal(8 + 0.25 * quality, 1))``, so popularity is a weak quality signal.

    Args:
        n_topics: Number of topics, 2..20.
        n_items: Number of items (>= n_topics).
        cue_noise: Probability that an item's wording cue ignores its quality, in [0, 1].
        max_text_length: Texts are cut to this many characters.
        rng: Source of randomness.

    Returns:
        The catalogue.

    Raises:
        CatalogError: On an unusable setting.
    """
    if not 2 <= n_topics <= len(TOPICS):
        raise CatalogError(
            f"n_topics={n_topics} is outside 2..{len(TOPICS)} for a generated catalogue; "
            "pass catalog=PATH to use more topics"
        )
    if n_items < n_topics:
        raise CatalogError(f"n_items={n_items} is below n_topics={n_topics}; raise n_items")
    if not 0.0 <= cue_noise <= 1.0:
        raise CatalogError(f"cue_noise={cue_noise} is outside [0, 1]")
    vocab = [TOPICS[i] for i in _topic_vocabularies(n_topics)]
    means = topic_quality_means(n_topics)
    topics = np.arange(n_items, dtype=np.int64) % n_topics
    quality = rng.normal(means[topics], QUALITY_STD)
    tiers = np.where(quality < -1.0, 0, np.where(quality > 1.0, 2, 1))
    noisy = rng.random(n_items) < cue_noise
    tiers = np.where(noisy, rng.integers(0, 3, n_items), tiers)
    views = np.exp(rng.normal(8.0 + 0.25 * quality, 1.0))
    texts = []
    for i in range(n_items):
        topic = vocab[topics[i]]
        cues = QUALITY_CUES[tiers[i]]
        cue = cues[rng.integers(len(cues))]
        subject = topic.subjects[rng.integers(len(topic.subjects))]
        fmt = topic.formats[rng.integers(len(topic.formats))]
        body = f"{subject} {fmt} - {topic.name}"
        text = f"{cue}: {body}" if cue else body[:1].upper() + body[1:]
        texts.append(clean_text(text, max_text_length))
    return Catalog(
        texts=tuple(texts),
        topics=topics,
        quality=quality,
        popularity=np.log10(1.0 + views).astype(np.float32),
        topic_names=tuple(t.name for t in vocab),
        topic_quality=means,
    )


def _find_columns(header: list[str], path: Path) -> dict[str, str]:
    lowered = {name.strip().lower(): name for name in header}
    columns = {}
    for key, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                columns[key] = lowered[alias]
                break
    if "title" not in columns:
        raise CatalogError(
            f"{path}, line 1: no 'title' column (found {header}); the catalogue CSV needs a header "
            "row with a 'title' column and optionally description, topic, quality or rating, "
            "popularity"
        )
    return columns


def _rows(reader: csv.DictReader, path: Path) -> Iterator[dict[str, str]]:
    """The rows of ``reader``; a malformed row is a :class:`CatalogError` naming its line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CatalogError(f"{path}, line {reader.line_num}: {exc}") from exc
        yield row


def _number(row: Mapping[str, str], column: str | None, path: Path, line: int) -> float | None:
    if column is None:
        return None
    raw = (row.get(column) or "").strip()
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise CatalogError(
            f"{path}, line {line}: column '{column}' holds {raw!r}, expected a number; fix the "
            "value or leave it empty"
        ) from None
    if not math.isfinite(value):
        raise CatalogError(f"{path}, line {line}: column '{column}' holds {raw!r}, not finite")
    return value


def _derive_topics(texts: list[str], n_topics: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster texts into topics: hashed bag of words, tf-idf, spherical k-means."""
    n = len(texts)
    features = np.zeros((n, _HASH_DIMS), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in _WORD.findall(text.lower()):
            if len(word) > 2 and word not in _STOPWORDS:
                features[i, zlib.crc32(word.encode()) % _HASH_DIMS] += 1.0
    df = (features > 0).sum(axis=0)
    features *= np.log((1.0 + n) / (1.0 + df)).astype(np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    features /= np.maximum(norms, 1e-12)
    centres = features[rng.choice(n, size=n_topics, replace=False)].copy()
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(_KMEANS_ITERATIONS):
        labels = np.argmax(features @ centres.T, axis=1)
        for k in range(n_topics):
            members = features[labels == k]
            centre = members.sum(axis=0) if len(members) else features[rng.integers(n)]
            centres[k] = centre / max(float(np.linalg.norm(centre)), 1e-12)
    return labels.astype(np.int64)


def _topic_name(texts: list[str], labels: np.ndarray, k: int) -> str:
    counts: Counter[str] = Counter()
    for i in np.flatnonzero(labels == k)[:2000]:
        counts.update(
            w for w in set(_WORD.findall(texts[i].lower())) if len(w) > 2 and w not in _STOPWORDS
        )
    words = [w for w, _ in counts.most_common(3)]
    return f"topic {k}: " + ", ".join(words) if words else f"topic {k}"


def load_catalog(
    path: str | Path,
    *,
    n_topics: int = 20,
    max_text_length: int = 128,
    rng: np.random.Generator,
) -> Catalog:
    """Read a catalogue from a CSV file.

    Columns (header names are case-insensitive; :data:`COLUMN_ALIASES` lists accepted aliases,
    e.g. goodbooks-10k's ``average_rating`` and ``ratings_count``):

    * ``title`` (required): the item's text; ``description`` (optional) is appended after
      ``" - "``. Texts go through :func:`envs._text.clean_text` with ``any_script=True``, so a
      title in Arabic or Chinese is kept as it is; a row whose title holds no letter, digit or
      punctuation mark is skipped and its line recorded in :attr:`Catalog.skipped_lines`.
    * ``topic`` (optional): any label; distinct labels become topics in order of appearance
      and ``n_topics`` is ignored. When absent, topics are derived by clustering the texts into
      ``n_topics`` groups: words (runs of letters of any script, lowercased, stop words
      dropped) are hashed with crc32 into 512 buckets, weighted by tf-idf, normalised, and
      grouped by 25 rounds of spherical k-means started from items drawn with ``rng``.
    * ``quality`` (optional, RecSim scale about -3..3) or ``rating``: a rating is z-scored over
      the catalogue and clipped to [-3, 3]. When both are absent, each topic gets one of
      RecSim's topic mean qualities (in an order drawn with ``rng``) and items draw their
      quality from ``Normal(topic mean, 0.1)``. Empty cells take the catalogue mean.
    * ``popularity`` (optional, >= 0, e.g. a view count): stored as ``log10(1 + popularity)``;
      0 when absent.

    Args:
        path: The CSV file.
        n_topics: Number of topics to derive when there is no topic column.
        max_text_length: Texts are cut to this many characters.
        rng: Source of randomness (topic clustering, quality when absent).

    The file is UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8").

    Returns:
        The catalogue.

    Raises:
        CatalogError: Naming the file, the line and the problem (text that is not UTF-8
            included).
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogError(
            f"catalogue file {path} does not exist; pass catalog= the path of a CSV file with a "
            "'title' column"
        )
    texts: list[str] = []
    labels: list[str] = []
    qualities: list[float | None] = []
    ratings: list[float | None] = []
    popularity: list[float] = []
    skipped: list[int] = []
    try:
        content = read_utf8(path)
    except TextFileError as exc:
        raise CatalogError(str(exc)) from exc
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise CatalogError(f"{path}, line {reader.line_num}: {exc}") from exc
    if not fieldnames:
        raise CatalogError(f"{path}, line 1: the file is empty; expected a header row")
    columns = _find_columns(list(fieldnames), path)
    for row in _rows(reader, path):
        line = reader.line_num
        raw_title = (row.get(columns["title"]) or "").strip()
        title = clean_text(raw_title, any_script=True)
        if raw_title and not title:
            skipped.append(line)  # no letter, digit or punctuation mark is left
            continue
        if not title:
            raise CatalogError(
                f"{path}, line {line}: empty title; every row needs a non-empty "
                f"'{columns['title']}'"
            )
        desc = clean_text(row.get(columns.get("description", ""), "") or "", any_script=True)
        texts.append(
            clean_text(f"{title} - {desc}" if desc else title, max_text_length, any_script=True)
        )
        if "topic" in columns:
            label = (row.get(columns["topic"]) or "").strip()
            if not label:
                raise CatalogError(
                    f"{path}, line {line}: empty '{columns['topic']}'; give every row a "
                    "topic or remove the column to derive topics"
                )
            labels.append(label)
        qualities.append(_number(row, columns.get("quality"), path, line))
        ratings.append(_number(row, columns.get("rating"), path, line))
        pop = _number(row, columns.get("popularity"), path, line)
        if pop is not None and pop < 0:
            raise CatalogError(
                f"{path}, line {line}: popularity {pop} is negative; expected a count >= 0"
            )
        popularity.append(0.0 if pop is None else math.log10(1.0 + pop))
    n = len(texts)
    if n < 2:
        raise CatalogError(f"{path}: {n} item rows; a catalogue needs at least 2 items")
    if labels:
        names = list(dict.fromkeys(labels))
        index = {name: k for k, name in enumerate(names)}
        topics = np.array([index[label] for label in labels], dtype=np.int64)
        topic_names = tuple(clean_text(name, 64, any_script=True) for name in names)
    else:
        if not 1 <= n_topics <= n:
            raise CatalogError(
                f"n_topics={n_topics} cannot be derived from {n} items in {path}; use "
                f"1 <= n_topics <= {n} or add a 'topic' column"
            )
        topics = _derive_topics(texts, n_topics, rng)
        topic_names = tuple(_topic_name(texts, topics, k) for k in range(n_topics))
    k_topics = len(topic_names)
    quality = _quality(qualities, ratings, topics, k_topics, rng)
    topic_quality = np.array(
        [quality[topics == k].mean() if np.any(topics == k) else 0.0 for k in range(k_topics)]
    )
    return Catalog(
        texts=tuple(texts),
        topics=topics,
        quality=quality,
        popularity=np.array(popularity, dtype=np.float32),
        topic_names=topic_names,
        topic_quality=topic_quality,
        source=str(path),
        skipped_lines=tuple(skipped),
    )


def _fill(values: list[float | None]) -> np.ndarray | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    mean = float(np.mean(known))
    return np.array([mean if v is None else v for v in values], dtype=np.float64)


def _quality(
    qualities: list[float | None],
    ratings: list[float | None],
    topics: np.ndarray,
    n_topics: int,
    rng: np.random.Generator,
) -> np.ndarray:
    quality = _fill(qualities)
    if quality is not None:
        return quality
    rating = _fill(ratings)
    if rating is not None:
        std = float(rating.std())
        z = (rating - rating.mean()) / std if std > 0 else np.zeros_like(rating)
        return np.clip(z, -3.0, 3.0)
    means = rng.permutation(topic_quality_means(n_topics)) if n_topics > 1 else np.zeros(1)
    return rng.normal(means[topics], QUALITY_STD)
