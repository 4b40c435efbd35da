from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import replace

import numpy as np
import pytest
from logged_sessions import (
    CS_ID,
    CS_KWARGS,
    REC_ID,
    REC_KWARGS,
    assert_same,
    cs_decisions,
    rec_decisions,
)

from rlagent.serving.interaction_log import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    DecisionRecord,
    InteractionLog,
    InteractionLogError,
    decode_json,
    encode_json,
)


def _log(path, **kwargs):
    settings = {"model_hash": "m1", "env_id": CS_ID, "env_kwargs": CS_KWARGS, **kwargs}
    return InteractionLog(path, **settings)


@pytest.fixture
def log(tmp_path):
    with _log(tmp_path / "log.sqlite", settings={"planner": None, "max_batch": 8}) as log:
        yield log


def test_decisions_read_back_exactly_with_their_propensity(log):
    log.start_session("s1", kind="customer_service", meta={"client": "test"})
    rows = cs_decisions("s1", 4, seed=0)
    log.record_decisions(rows)
    back = log.decisions("s1")
    assert [d.step for d in back] == [0, 1, 2, 3]
    for row, got in zip(rows, back, strict=True):
        assert_same(got.observation, row.observation)  # tuples of str, float32 arrays
        assert list(got.observation) == list(row.observation)  # the key order too
        assert got.observation["features"].dtype == np.float32
        assert got.action == row.action and got.action_name == row.action_name
        assert got.probabilities == row.probabilities
        assert got.planner == row.planner and got.model_hash == "m1" and got.time == row.time
        probs = row.probabilities
        expected = probs[row.action_name] if isinstance(probs, dict) else probs[row.action]
        assert got.propensity == expected
    assert log.sessions()[0].meta == {"client": "test"}
    assert log.session("s1").ended is None


def test_slate_propensity_is_the_joint_probability_of_the_ordered_slate(tmp_path):
    with InteractionLog(
        tmp_path / "rec.sqlite", model_hash="r1", env_id=REC_ID, env_kwargs=REC_KWARGS
    ) as log:
        log.start_session("r", kind="recommendation")
        rows = rec_decisions("r", 3, seed=1)
        log.record_decisions(rows)
        back = log.decisions("r")
    for row, got in zip(rows, back, strict=True):
        assert isinstance(got.action, list) and got.action == row.action
        assert_same(got.observation, row.observation)
        if isinstance(row.probabilities, list):
            i, j = row.action
            assert got.propensity == row.probabilities[4 * i + j]
        else:
            assert got.propensity == row.probabilities[row.action_name]


def test_explicit_propensity_wins_for_a_deterministic_choice(log):
    log.start_session("s", kind="customer_service")
    row = replace(cs_decisions("s", 1, seed=0)[0], propensity=1.0)
    log.record_decisions([row])
    assert log.decisions("s")[0].propensity == 1.0


@pytest.mark.parametrize(
    "value",
    [
        {"a": (np.float32(1.5), np.int64(3), np.bool_(True)), "b": [1, 2.5, None, "x"]},
        {"x": np.array([[1.0, np.nan], [np.inf, -np.inf]], dtype=np.float32)},
        {"t": (), "u": np.array(["ab", "c"]), "n": np.float64(0.1), "f": float("nan")},
        {"nested": {"deep": (np.zeros((0, 3), dtype=np.int16), "é ✓")}},
    ],
)
def test_json_keeps_types_bit_for_bit(value):
    text = encode_json(value)
    assert "NaN" not in text and "Infinity" not in text  # standard JSON for SQLite's json_*
    assert_same(decode_json(text), value)


def test_feedback_events_and_end_are_joined_to_their_session(log):
    log.start_session("s", kind="customer_service")
    log.record_decisions(cs_decisions("s", 2, seed=3))
    first = log.record_feedback("s", step=1, reward=0.25)
    log.record_event("s", "customer_text", {"text": "my card is lost"})
    log.end_session("s", "done")
    second = log.record_feedback("s", resolved=True, rating=5, meta={"thumb": "up"})
    assert second > first
    fb = log.feedback("s")
    assert [(f.step, f.reward, f.resolved, f.rating, f.meta) for f in fb] == [
        (1, 0.25, None, None, {}),
        (None, None, True, 5, {"thumb": "up"}),
    ]
    assert [(e.kind, e.payload) for e in log.events("s")] == [
        ("customer_text", {"text": "my card is lost"})
    ]
    session = log.session("s")
    assert session.end_reason == "done" and session.ended >= session.started


def test_reopened_by_another_model_appends_and_keeps_each_model_hash(tmp_path):
    path = tmp_path / "log.sqlite"
    with _log(path, settings={"planner": "mcts"}) as log:
        log.start_session("a", kind="customer_service")
        log.record_decisions(cs_decisions("a", 2, seed=0, model_hash="m1"))
    with _log(path, model_hash="m2") as log:
        log.start_session("b", kind="customer_service")
        log.record_decisions(cs_decisions("b", 2, seed=1, model_hash="m2"))
        assert [s.model_hash for s in log.servers()] == ["m1", "m2"]
        assert log.servers()[0].settings == {"planner": "mcts"}
        assert [s.server_id for s in log.sessions()] == [1, 2]
    log = InteractionLog.for_reading(path)
    assert [d.model_hash for d in log.decisions()] == ["m1", "m1", "m2", "m2"]
    assert (log.env_id, log.env_kwargs, log.schema_version) == (CS_ID, CS_KWARGS, SCHEMA_VERSION)
    log.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == str(SCHEMA_VERSION) and meta["env_id"] == CS_ID
    conn.close()


def test_worker_threads_share_one_log(log):
    def work(worker):
        sid = f"w{worker}"
        log.start_session(sid, kind="customer_service")
        rows = cs_decisions(sid, 6, seed=worker)
        for i in range(0, 6, 2):
            log.record_decisions(rows[i : i + 2])
        log.record_feedback(sid, reward=float(worker))
        log.end_session(sid, "done")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.decisions()) == 36
    for w in range(6):
        assert [d.step for d in log.decisions(f"w{w}")] == list(range(6))
    assert sorted(f.reward for f in log.feedback()) == [float(w) for w in range(6)]


def test_a_batch_is_all_or_nothing(log):
    log.start_session("s", kind="customer_service")
    rows = cs_decisions("s", 3, seed=0)
    log.record_decisions(rows[:1])
    with pytest.raises(InteractionLogError, match="already has a decision at step 0"):
        log.record_decisions(rows[1:] + rows[:1])
    assert [d.step for d in log.decisions("s")] == [0]


# -- errors ---------------------------------------------------------------------------------


def test_a_directory_is_refused(tmp_path):
    message = (
        f"{tmp_path} is a directory; the log is one file: pass a file path such as "
        f"{tmp_path / 'interactions.sqlite'}."
    )
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        _log(tmp_path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database\n" * 100)
    with pytest.raises(InteractionLogError, match=re.escape(f"{path} is not an SQLite database")):
        _log(path)
    assert path.read_text().startswith("hello")


def test_another_apps_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    message = (
        f"{path} is an SQLite database but not an rlagent interaction log (application_id 0x0, "
        f"expected {APPLICATION_ID:#x}); log to a new file instead (rlagent serve --log NEW_PATH)."
    )
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        _log(path)


def test_an_unsupported_schema_version_is_refused(tmp_path):
    path = tmp_path / "log.sqlite"
    _log(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    message = (
        f"{path} is an interaction log of schema_version 99; this rlagent reads schema_version "
        f"{SCHEMA_VERSION} only: upgrade rlagent to read it, or log to a new file instead"
    )
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        _log(path)
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        InteractionLog.for_reading(path)


def test_a_log_of_another_env_is_refused(tmp_path):
    path = tmp_path / "log.sqlite"
    _log(path).close()
    with pytest.raises(InteractionLogError, match=re.escape("one log holds one env's obs")):
        InteractionLog(path, model_hash="m", env_id=REC_ID, env_kwargs={})
    with pytest.raises(InteractionLogError, match=re.escape("with env_kwargs {'history': 3")):
        _log(path, env_kwargs={"history": 4})


def test_reading_a_missing_or_empty_file_is_refused(tmp_path):
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(InteractionLogError, match=re.escape(f"No interaction log at {missing}")):
        InteractionLog.for_reading(missing)
    assert not missing.exists()
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(InteractionLogError, match="is an empty database, not an interaction log"):
        InteractionLog.for_reading(empty)


def test_feedback_for_an_unknown_session_says_what_to_do(log):
    message = (
        "Unknown session 'nope': call start_session('nope', kind=...) before recording "
        "anything for it."
    )
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        log.record_feedback("nope", reward=1.0)
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        log.record_decisions(cs_decisions("nope", 1, seed=0))
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        log.record_event("nope", "click", {})
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        log.decisions("nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "record_feedback got no feedback: give reward, resolved, rating or meta."),
        ({"rating": 6}, "rating is 6; expected an int in [1, 5]."),
        ({"reward": float("nan")}, "reward is nan; expected a finite number."),
        ({"resolved": "yes"}, "resolved is 'yes'; expected True or False."),
        (
            {"step": 5, "reward": 1.0},
            "Session 's' has no decision at step 5; give the step of a recorded decision, or "
            "step=None for feedback on the whole session.",
        ),
    ],
)
def test_bad_feedback_is_refused(log, kwargs, message):
    log.start_session("s", kind="customer_service")
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        log.record_feedback("s", **kwargs)
    assert log.feedback() == []


def test_bad_decisions_are_refused(log):
    log.start_session("s", kind="customer_service")
    row = cs_decisions("s", 1, seed=0)[0]
    cases = [
        (replace(row, step=-1), "rows[0].step is -1; expected an int >= 0."),
        (replace(row, action_name="fly"), "probabilities has no entry for the taken action 'fly'"),
        (replace(row, probabilities=[0.5] * 3, action=7), "probabilities has 3 entries, none for"),
        (replace(row, probabilities={"a": 1.5}), "rows[0].probabilities['a'] is 1.5, not a prob"),
        (replace(row, observation={"x": object()}), "rows[0].observation['x'] is a object;"),
        (replace(row, model_hash=""), "rows[0].model_hash is ''; expected a non-empty str."),
    ]
    for bad, message in cases:
        with pytest.raises(InteractionLogError, match=re.escape(message)):
            log.record_decisions([bad])
    with pytest.raises(InteractionLogError, match=re.escape("rows holds step 0 of session 's'")):
        log.record_decisions([row, row])
    assert log.decisions() == []


def test_sessions_start_once_and_end_once(log):
    log.start_session("s", kind="customer_service")
    with pytest.raises(InteractionLogError, match=re.escape("Session 's' is already in")):
        log.start_session("s", kind="customer_service")
    log.end_session("s", "deleted")
    with pytest.raises(InteractionLogError, match=re.escape("Session 's' has already ended.")):
        log.end_session("s", "expired")
    message = "Session 's' has ended; it takes no more decisions (start a new session)."
    with pytest.raises(InteractionLogError, match=re.escape(message)):
        log.record_decisions(cs_decisions("s", 1, seed=0))


def test_a_log_opened_for_reading_or_closed_refuses_writes(tmp_path):
    path = tmp_path / "log.sqlite"
    _log(path).close()
    reader = InteractionLog.for_reading(path)
    with pytest.raises(InteractionLogError, match=re.escape("was opened with InteractionLog.for")):
        reader.start_session("s", kind="x")
    reader.close()
    reader.close()
    with pytest.raises(InteractionLogError, match=re.escape(f"The interaction log {path} is cl")):
        reader.sessions()


def test_decision_record_fields_are_the_documented_ones():
    fields = list(DecisionRecord.__dataclass_fields__)
    assert fields == [
        "session_id", "step", "time", "observation", "observation_text", "action",
        "action_name", "probabilities", "planner", "model_hash", "propensity",
    ]  # fmt: skip
