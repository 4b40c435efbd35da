"""Tests of recommendation catalogues: generated, CSV files, derived topics, bad files."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs._text import CHARSET
from envs.recommendation import (
    CatalogError,
    MyopicPolicy,
    RecommendationEnv,
    generate_catalog,
    load_catalog,
    topic_quality_means,
)
from envs.recommendation.vocabulary import QUALITY_CUES, TOPICS


def write(tmp_path, text, name="items.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_topic_quality_means_match_recsim():
    means = topic_quality_means(20)
    expected = np.concatenate([np.linspace(-3, 0, 14), np.linspace(0, 3, 6)])
    assert np.allclose(means, expected)
    assert np.mean(means < 0) == pytest.approx(0.65)  # 13 below 0, two topics at 0


def test_generated_catalogue_shape_texts_and_quality():
    catalog = generate_catalog(n_topics=20, n_items=400, rng=np.random.default_rng(0))
    assert catalog.n_items == 400 and catalog.n_topics == 20
    assert np.bincount(catalog.topics).tolist() == [20] * 20
    assert all(set(text) <= set(CHARSET) and 0 < len(text) <= 128 for text in catalog.texts)
    residual = catalog.quality - catalog.topic_quality[catalog.topics]
    assert abs(residual.std() - 0.1) < 0.02
    assert catalog.topic_names == tuple(t.name for t in TOPICS)
    assert not catalog.quality.flags.writeable


def test_wording_cues_are_informative_but_noisy():
    catalog = generate_catalog(n_items=2000, cue_noise=0.3, rng=np.random.default_rng(1))
    high = [any(t.startswith(c + ":") for c in QUALITY_CUES[2]) for t in catalog.texts]
    high = np.array(high)
    good = catalog.quality > 1.0
    assert high[good].mean() > 0.7  # mostly flagged
    assert 0.0 < high[~good].mean() < 0.2  # noise flags some others too


def test_generated_catalogue_rejects_bad_settings():
    rng = np.random.default_rng(0)
    with pytest.raises(CatalogError, match=re.escape("n_topics=21 is outside 2..20")):
        generate_catalog(n_topics=21, rng=rng)
    with pytest.raises(CatalogError, match=re.escape("n_items=3 is below n_topics=5")):
        generate_catalog(n_topics=5, n_items=3, rng=rng)


def test_csv_with_all_columns(tmp_path):
    path = write(
        tmp_path,
        "title,description,topic,quality,popularity\n"
        "Caf\u00e9 guide,Where to drink coffee,food,1.5,100\n"
        'Bread,"Flour, water",food,,0\n'
        "Rockets,How they fly,space,-2,9\n",
    )
    catalog = load_catalog(path, rng=np.random.default_rng(0))
    assert catalog.texts == (
        "Cafe guide - Where to drink coffee",
        "Bread - Flour, water",
        "Rockets - How they fly",
    )
    assert catalog.topic_names == ("food", "space")
    assert catalog.topics.tolist() == [0, 0, 1]
    assert catalog.quality.tolist() == pytest.approx([1.5, -0.25, -2.0])  # empty -> mean
    assert catalog.popularity.tolist() == pytest.approx([np.log10(101), 0.0, 1.0])
    assert catalog.source == str(path)


def test_csv_rating_is_standardised_and_topics_derived(tmp_path):
    rows = ["title,rating"]
    words = ["dragon castle sword", "galaxy star rocket", "murder detective clue"]
    for i in range(60):
        rows.append(f"{words[i % 3]} volume {i},{3 + (i % 5) / 2}")
    path = write(tmp_path, "\n".join(rows) + "\n")
    catalog = load_catalog(path, n_topics=3, rng=np.random.default_rng(0))
    assert catalog.n_topics == 3
    assert abs(catalog.quality.mean()) < 1e-9 and catalog.quality.max() <= 3.0
    # Items sharing their words land in the same derived topic.
    for k in range(3):
        assert len(set(catalog.topics[k::3].tolist())) == 1
    assert len(set(catalog.topics[:3].tolist())) == 3
    assert all(name.startswith("topic ") for name in catalog.topic_names)


def test_csv_without_quality_gets_recsim_topic_means(tmp_path):
    rows = ["title,topic"] + [f"item {i},t{i % 4}" for i in range(40)]
    catalog = load_catalog(write(tmp_path, "\n".join(rows)), rng=np.random.default_rng(0))
    assert sorted(np.round(catalog.topic_quality, 0).tolist()) == pytest.approx(
        np.round(topic_quality_means(4), 0).tolist()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the file is empty; expected a header row"),
        ("name,quality\nx,1\n", "line 1: no 'title' column (found ['name', 'quality'])"),
        ("title\nfine\n  \n", "line 3: empty title; every row needs a non-empty 'title'"),
        ("title,quality\na,1\nb,good\n", "line 3: column 'quality' holds 'good', expected a"),
        ("title,quality\na,1\nb,inf\n", "line 3: column 'quality' holds 'inf', not finite"),
        ("title,popularity\na,1\nb,-4\n", "line 3: popularity -4.0 is negative"),
        ("title,topic\na,x\nb,\n", "line 3: empty 'topic'; give every row a topic"),
        ("title\nonly one\n", "1 item rows; a catalogue needs at least 2 items"),
        ('title,quality\n"multi\nline",1\nb,?\n', "line 4: column 'quality' holds '?'"),
    ],
)
def test_bad_csv_files_name_file_line_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(CatalogError, match=re.escape(f"{path}")) as info:
        load_catalog(path, rng=np.random.default_rng(0))
    assert message in str(info.value)


def test_missing_file_and_impossible_topic_count(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(CatalogError, match=re.escape(f"catalogue file {missing} does not exist")):
        RecommendationEnv(catalog=missing)
    path = write(tmp_path, "title\na\nb\n")
    with pytest.raises(CatalogError, match=re.escape("n_topics=5 cannot be derived from 2 items")):
        load_catalog(path, n_topics=5, rng=np.random.default_rng(0))


def test_env_on_a_small_csv_catalogue(tmp_path):
    rows = ["title,topic,quality"] + [f"item {i},t{i % 3},{i % 7 - 3}" for i in range(30)]
    env = RecommendationEnv(catalog=write(tmp_path, "\n".join(rows)), n_candidates=4)
    assert env.n_topics == 3
    check_env(env, skip_render_check=True)


def test_goodbooks_catalogue(shared_data):
    books = shared_data / "goodbooks10k" / "books.csv"
    if not books.is_file():
        pytest.skip(f"{books} is absent")
    env = RecommendationEnv(catalog=books, n_topics=20)
    catalog = env.catalog
    assert catalog.n_items > 9_900 and catalog.n_topics == 20
    assert np.bincount(catalog.topics, minlength=20).min() > 0
    assert -3.0 <= catalog.quality.min() and catalog.quality.max() <= 3.0
    assert catalog.popularity.min() > 0  # ratings_count
    assert "Hunger Games" in catalog.texts[0]
    assert "\u0647\u064a\u0628\u062a\u0627" in catalog.texts[1786]  # line 1788, in Arabic
    assert catalog.skipped_lines == () and catalog.n_items == 10_000
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    policy = MyopicPolicy(env)
    policy.reset(seed=0)
    for _ in range(20):
        obs, reward, terminated, _, _ = env.step(policy.act(obs))
        assert 0.0 <= reward <= 4.0
        if terminated:
            break


def test_excel_csv_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "items.csv"
    path.write_bytes(b"\xef\xbb\xbftitle,topic\r\nBread,food\r\nRockets,space\r\n")
    catalog = load_catalog(path, rng=np.random.default_rng(0))
    assert catalog.texts == ("Bread", "Rockets")


def test_invalid_utf8_is_an_error_on_its_line(tmp_path):
    path = tmp_path / "items.csv"
    rows = b"".join(b"item number %d,t%d\n" % (i, i % 3) for i in range(3000))
    path.write_bytes(b"title,topic\n" + rows + b"Caf\xe9 guide,food\n")
    message = f"{path}, line 3002: not UTF-8 text (byte 0xe9, byte 4 of the line)"
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(path, rng=np.random.default_rng(0))


def test_titles_in_another_script_are_items(tmp_path):
    arabic = "\u0647\u064a\u0628\u062a\u0627"  # a goodbooks-10k title
    chinese = "\u4e09\u4f53"
    rows = f"title,topic\n{arabic},novels\n{chinese},novels\nRockets,space\n\U0001f680,space\n"
    env = RecommendationEnv(catalog=write(tmp_path, rows), n_candidates=2, slate_size=1)
    catalog = env.catalog
    assert catalog.texts == (arabic, chinese, "Rockets")
    assert catalog.skipped_lines == (5,)  # an emoji alone is not a title
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(env.action_space.sample())
