"""The interaction log's SQLite schema, and opening a file as a log (checks and pragmas).

The schema is documented in :mod:`rlagent.serving.interaction_log` and docs/serving.md.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from rlagent.serving._log_records import InteractionLogError, dumps, loads

__all__ = [
    "APPLICATION_ID",
    "DECISION_COLUMNS",
    "NEW_LOG_HINT",
    "SCHEMA_VERSION",
    "canonical",
    "connect",
    "create_schema",
    "is_empty",
    "read_meta",
]

#: The version of the schema this module writes and reads (``PRAGMA user_version``).
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of an interaction log ("RLLG").
APPLICATION_ID = 0x524C4C47
_APPLICATION = "rlagent-interaction-log"
NEW_LOG_HINT = "log to a new file instead (rlagent serve --log NEW_PATH)"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE servers (
    id INTEGER PRIMARY KEY, opened REAL NOT NULL, model_hash TEXT NOT NULL,
    settings TEXT NOT NULL, rlagent_version TEXT NOT NULL);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY, kind TEXT NOT NULL, started REAL NOT NULL, ended REAL,
    end_reason TEXT, meta TEXT NOT NULL, server_id INTEGER NOT NULL REFERENCES servers(id));
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(session_id), step INTEGER NOT NULL,
    time REAL NOT NULL, observation TEXT NOT NULL, observation_text TEXT NOT NULL,
    action TEXT NOT NULL, action_name TEXT NOT NULL, probabilities TEXT NOT NULL,
    propensity REAL NOT NULL, planner TEXT, model_hash TEXT NOT NULL,
    server_id INTEGER NOT NULL REFERENCES servers(id), UNIQUE (session_id, step));
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(session_id),
    step INTEGER, time REAL NOT NULL, reward REAL, resolved INTEGER, rating INTEGER,
    meta TEXT NOT NULL);
CREATE INDEX feedback_by_session ON feedback (session_id, id);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(session_id),
    time REAL NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX events_by_session ON events (session_id, id);
"""
#: The ``decisions`` columns in :class:`DecisionRecord` order.
DECISION_COLUMNS = (
    "session_id, step, time, observation, observation_text, action, action_name, "
    "probabilities, propensity, planner, model_hash"
)


def canonical(value: Any) -> str:
    """JSON of ``value`` with sorted keys, to compare env kwargs across openings."""
    return json.dumps(loads(dumps(value, where="env_kwargs")), sort_keys=True, default=repr)


def connect(path: Path, *, create: bool, synchronous: str, busy: float) -> sqlite3.Connection:
    """A connection to the log at ``path`` (WAL, ``synchronous``, foreign keys on).

    Args:
        path: The file.
        create: Create it (and its folder) when missing; else it must be a log already.
        synchronous: ``"FULL"`` or ``"NORMAL"``.
        busy: Seconds a write waits for another process's.

    Raises:
        InteractionLogError: A directory, a missing file (``create=False``), a file that is not
            an SQLite database, another application's database, or another schema version.
    """
    if path.is_dir():
        raise InteractionLogError(
            f"{path} is a directory; the log is one file: pass a file path such as "
            f"{path / 'interactions.sqlite'}."
        )
    if not path.exists():
        if not create:
            raise InteractionLogError(
                f"No interaction log at {path}; check the path (rlagent serve --log PATH "
                "writes one)."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=busy, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise InteractionLogError(f"Cannot open {path} as a database: {exc}.") from exc
    try:
        _check(conn, path, create)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _check(conn: sqlite3.Connection, path: Path, create: bool) -> None:
    try:
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        has_tables = not is_empty(conn)
    except sqlite3.DatabaseError as exc:
        raise InteractionLogError(
            f"{path} is not an SQLite database ({exc}), so not an interaction log; {NEW_LOG_HINT}."
        ) from exc
    if not has_tables and not create:
        raise InteractionLogError(
            f"{path} is an empty database, not an interaction log yet: a server writes one "
            "with rlagent serve --log PATH."
        )
    if has_tables and application_id != APPLICATION_ID:
        raise InteractionLogError(
            f"{path} is an SQLite database but not an rlagent interaction log "
            f"(application_id {application_id:#x}, expected {APPLICATION_ID:#x}); "
            f"{NEW_LOG_HINT}."
        )
    if has_tables and version != SCHEMA_VERSION:
        newer = version > SCHEMA_VERSION
        raise InteractionLogError(
            f"{path} is an interaction log of schema_version {version}; this rlagent reads "
            f"schema_version {SCHEMA_VERSION} only: "
            + ("upgrade rlagent to read it, or " if newer else "")
            + f"{NEW_LOG_HINT}."
        )


def is_empty(conn: sqlite3.Connection) -> bool:
    """Whether the database has no tables yet (a new file)."""
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def create_schema(conn: sqlite3.Connection, env_id: str, env_kwargs: dict, version: str) -> None:
    """Create the tables and the ``meta`` rows, inside the caller's transaction."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    meta = {
        "application": _APPLICATION,
        "schema_version": str(SCHEMA_VERSION),
        "env_id": env_id,
        "env_kwargs": dumps(env_kwargs, where="env_kwargs"),
        "created": repr(time.time()),
        "rlagent_version": version,
    }
    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def read_meta(conn: sqlite3.Connection) -> tuple[str, dict[str, Any]]:
    """The log's env id and env kwargs."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    return meta["env_id"], loads(meta["env_kwargs"])
