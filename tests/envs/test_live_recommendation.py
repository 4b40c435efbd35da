"""Live recommendation sessions: the env's own observations, from a real user's items."""

from __future__ import annotations

import re

import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.recommendation import LiveInputError, LiveRecommendation, RecommendationEnv


@pytest.fixture
def catalog(tmp_path):
    rows = ["title,topic,popularity"]
    for i in range(12):
        rows.append(f"Cooking show {i},food,{10 * i}")
        rows.append(f"رحلة إلى المريخ {i},space,{5 * i}")
    path = tmp_path / "catalog.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def assert_same(got: dict, obs: dict, env: RecommendationEnv) -> None:
    assert set(got) == set(obs)
    assert got["candidates"] == obs["candidates"]
    assert got["history"] == obs["history"]
    for key in ("candidate_popularity", "features"):
        assert got[key].dtype == obs[key].dtype == np.float32
        np.testing.assert_array_equal(got[key], obs[key])
    assert env.observation_space.contains(got)


def replay(env: RecommendationEnv, seed: int, *, own_history: bool) -> int:
    """One seeded session with random slates, mirrored live; returns the clicks."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    live = env.live_session()
    chosen: list[str] = []  # what a client would keep: the chosen texts, oldest first
    for _ in range(60):
        history = None if own_history else list(reversed([t for t in obs["history"] if t]))
        got = live.observation(
            list(obs["candidates"]), history, obs["candidate_popularity"].tolist()
        )
        assert_same(got, obs, env)
        action = env.action_space.sample()
        slate = [int(action)] if env.slate_size == 1 else [int(p) for p in action]
        obs, reward, terminated, truncated, info = env.step(action)
        shown = list(dict.fromkeys(slate))
        clicked = shown[info["clicked"]] if info["clicked"] >= 0 else None
        live.record(slate, clicked, minutes=reward if clicked is not None else None)
        if clicked is not None:
            chosen.append(got["candidates"][clicked])
        assert (
            live.history == tuple(chosen) and live.step == info["episode_metrics"]["session_length"]
        )
        assert live.watch_time == info["episode_metrics"]["watch_time"]
        if terminated or truncated:
            break
    return live.clicks


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"slate_size": 1, "history_length": 1},
        {"dynamics": "bored", "n_candidates": 4, "slate_size": 3, "history_length": 5},
        {"max_text_length": 12, "n_items": 50},
    ],
)
@pytest.mark.parametrize("own_history", [False, True])
def test_live_observations_equal_the_env_s_at_every_step(kwargs, own_history):
    env = RecommendationEnv(**kwargs)
    clicks = [replay(env, seed, own_history=own_history) for seed in range(6)]
    assert sum(clicks) > 5


def test_live_observations_equal_the_env_s_with_a_catalogue_file(catalog):
    env = RecommendationEnv(catalog=catalog, n_candidates=5)
    assert any(p > 0 for p in env.catalog.popularity)
    for seed in range(4):
        replay(env, seed, own_history=seed % 2 == 0)


def test_defaults_history_cut_and_minutes():
    env = RecommendationEnv(n_candidates=3, slate_size=2, history_length=2, max_text_length=10)
    live = env.live_session()
    obs = live.observation(["a" * 30, "b", "c"], history=["old", "older", "newest"])
    assert obs["candidates"] == ("a" * 10, "b", "c")
    assert obs["history"] == ("newest", "older")
    np.testing.assert_array_equal(obs["candidate_popularity"], np.zeros(3, np.float32))
    live.record([0, 0], clicked=0)  # a repeated position is shown once
    live.record(np.array([2, 1]), clicked=None)
    live.record(1, clicked=1, minutes=2.5)
    assert (live.step, live.clicks, live.watch_time) == (3, 2, 6.5)
    assert live.history == ("a" * 10, "b")
    features = live.observation(["x", "y", "z"])["features"]
    expected = np.array([0.03, 1.0, 0.02, 6.5 / 200.0, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(features, expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((["a", "b"],), "Got 2 candidates; this env's agent chooses among exactly 3 "),
        (("abc",), "candidates must be a list of 3 item texts, got str."),
        ((["a", "", "c"],), "The candidate 1 is empty; send some text."),
        ((["a", "b", 3],), "The candidate 2 must be a string, got int."),
        ((["a", "b", "c☕"],), "The candidate 2 holds characters this env cannot observe: '☕'"),
        ((["a", "b", "c"], ["ok", " "]), "The history item 1 is empty (only whitespace)"),
        ((["a", "b", "c"], "ok"), "history must be a list of item texts (oldest first), got str"),
        ((["a", "b", "c"], None, [1.0]), "Got 1 popularity values for 3 candidates; send one"),
        ((["a", "b", "c"], None, [1, -1, 0]), "popularity values must be finite numbers >= 0"),
        ((["a", "b", "c"], None, [1, "x", 0]), "popularity must be a list of 3 numbers"),
    ],
)
def test_bad_observation_input_is_refused(args, message):
    live = RecommendationEnv(n_candidates=3).live_session()
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.observation(*args)
    assert live.candidates is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([0, 3], None), "slate position 3 is not a candidate position; expected an int in [0, 2]"),
        (([0, 1, 2], None), "The slate has 3 positions; this env shows 1 to 2 (slate_size)"),
        (([], None), "The slate has 0 positions; this env shows 1 to 2 (slate_size)"),
        (("01", None), "slate must be a list of candidate positions, got str."),
        (([0, 1], 2), "clicked=2 is not in the slate [0, 1]; send the candidate position"),
        (([0, 1], True), "clicked position True is not a candidate position"),
        (([0, 1], 0, -1.0), "minutes=-1.0; expected a finite number of minutes >= 0."),
        (([0, 1], 0, float("nan")), "minutes=nan; expected a finite number of minutes >= 0."),
        (([0, 1], None, 3.0), "minutes=3.0 without a click; send clicked=<position>"),
    ],
)
def test_bad_records_are_refused(args, message):
    live = RecommendationEnv(n_candidates=3).live_session()
    live.observation(["a", "b", "c"])
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.record(*args)
    assert live.step == 0


def test_record_before_any_observation_is_refused():
    live = RecommendationEnv().live_session()
    with pytest.raises(LiveInputError, match=re.escape("record() was called before observation()")):
        live.record([0, 1], None)


def test_exported_where_the_env_is():
    import rlagent.envs

    assert rlagent.envs.LiveRecommendation is LiveRecommendation
    assert isinstance(RecommendationEnv().live_session(), LiveRecommendation)
    assert issubclass(LiveInputError, ValueError)
