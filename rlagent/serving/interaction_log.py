"""The durable interaction log: every decision a served agent makes, with its propensity.

An :class:`InteractionLog` is one SQLite file (WAL journal) that a server appends to: sessions,
every decision in each session with the observation, the action, the full action probabilities
(so that off-policy evaluation is possible later), the model's hash and the planner's settings,
feedback joined to its session, and other events. A log can be reopened later and appended to by
a server of the same or another model (each decision row names its model; each opening is a
``servers`` row). :func:`rlagent.serving.log_export.export_minari` turns it into a Minari dataset.

Durability: a call that writes returns only after its transaction has committed, with
``PRAGMA synchronous=FULL`` by default (the WAL is synced to disk at every commit). A decision
the server acknowledges after :meth:`InteractionLog.record_decisions` returns survives the
server's death, ``kill -9`` included, and survives power loss too. ``synchronous="NORMAL"``
skips that sync: in WAL mode a committed transaction is still in the WAL file that the operating
system holds, so process death loses nothing; only an OS crash or power loss may lose the last
commits (the database stays consistent either way).

Threads: one connection, serialised by a lock; every public method may be called from any
thread. A batch of decisions from one micro-batch is one transaction (one sync). Other processes
may read the file while a server writes (WAL); two writing processes wait for each other up to
``busy_timeout_s``.

Schema (``schema_version`` 1; ``PRAGMA user_version`` holds the version and ``PRAGMA
application_id`` is ``0x524C4C47``, "RLLG"; JSON columns hold standard JSON written by
:func:`encode_json`, whose markers keep tuples and numpy arrays):

``meta(key TEXT PRIMARY KEY, value TEXT)``
    ``application`` (``"rlagent-interaction-log"``), ``schema_version`` (``"1"``), ``env_id``,
    ``env_kwargs`` (JSON), ``created`` (Unix seconds), ``rlagent_version``.
``servers(id INTEGER PRIMARY KEY, opened REAL, model_hash TEXT, settings JSON, rlagent_version)``
    One row per :class:`InteractionLog` opened for writing.
``sessions(session_id TEXT PRIMARY KEY, kind TEXT, started REAL, ended REAL NULL,
end_reason TEXT NULL, meta JSON, server_id INTEGER)``
    ``ended`` is ``NULL`` while the session is open.
``decisions(id INTEGER PRIMARY KEY, session_id TEXT, step INTEGER, time REAL, observation JSON,
observation_text TEXT, action JSON, action_name TEXT, probabilities JSON, propensity REAL,
planner JSON NULL, model_hash TEXT, server_id INTEGER, UNIQUE(session_id, step))``
    ``id`` is the commit order; ``action`` is an int or a list of ints; ``probabilities`` an
    object (action name -> p) or an array in the env's action order; ``propensity`` the
    probability of the taken action.
``feedback(id INTEGER PRIMARY KEY, session_id TEXT, step INTEGER NULL, time REAL, reward REAL
NULL, resolved INTEGER NULL, rating INTEGER NULL, meta JSON)``
    ``step`` ``NULL``: about the whole session; else about that decision.
``events(id INTEGER PRIMARY KEY, session_id TEXT, time REAL, kind TEXT, payload JSON)``
    Customer text, clicks, session ends: whatever the app wants kept beside the decisions.

Times are Unix seconds. Example::

    log = InteractionLog("interactions.sqlite", model_hash=h, env_id="rlagent/CustomerService-v0",
                         env_kwargs={})
    log.start_session(sid, kind="customer_service")
    log.record_decisions([DecisionRecord(sid, 0, time.time(), obs, text, 3, name, probs, None, h)])
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from rlagent.serving._log_checks import boolean, decision_row, finite, integer, text
from rlagent.serving._log_records import (
    DecisionRecord,
    EventRecord,
    FeedbackRecord,
    InteractionLogError,
    ServerRecord,
    SessionRecord,
    dumps,
    loads,
)
from rlagent.serving._log_schema import (
    APPLICATION_ID,
    DECISION_COLUMNS,
    NEW_LOG_HINT,
    SCHEMA_VERSION,
    canonical,
    connect,
    create_schema,
    is_empty,
    read_meta,
)

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "DecisionRecord",
    "EventRecord",
    "FeedbackRecord",
    "InteractionLog",
    "InteractionLogError",
    "ServerRecord",
    "SessionRecord",
    "decode_json",
    "encode_json",
]

#: The JSON of the log's JSON columns: ``encode_json(value) -> str`` and back, types kept.
encode_json = dumps
decode_json = loads


class InteractionLog:
    """An SQLite interaction log, opened for appending (see the module docstring for the schema).

    Args:
        path: The log file; created (with its folder) when missing, appended to when it is a
            log already.
        model_hash: The hash of the model this server loaded (kept in the ``servers`` row).
        env_id: The environment whose observations and actions the log holds.
        env_kwargs: Its keyword arguments. An existing log must have the same id and kwargs.
        settings: The server's settings (planner, batching...), kept as JSON.
        synchronous: ``"FULL"`` (default: every commit survives power loss too) or
            ``"NORMAL"`` (survives process death, not power loss; faster).
        busy_timeout_s: How long a write waits for another process writing the same file.

    Raises:
        InteractionLogError: The path is a directory, the file is not an rlagent log or has an
            unsupported ``schema_version``, or the log was written for another env.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        model_hash: str,
        env_id: str,
        env_kwargs: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout_s: float = 10.0,
    ) -> None:
        from rlagent import __version__

        model_hash = text(model_hash, "model_hash")
        env_id = text(env_id, "env_id")
        env_kwargs = dict(env_kwargs or {})
        if synchronous not in ("FULL", "NORMAL"):
            raise InteractionLogError(f"synchronous is {synchronous!r}; expected FULL or NORMAL.")
        self._open(Path(path), create=True, synchronous=synchronous, busy=busy_timeout_s)
        try:
            with self._transaction() as conn:
                if is_empty(conn):
                    create_schema(conn, env_id, env_kwargs, __version__)
                self._env_id, self._env_kwargs = read_meta(conn)
                if self._env_id != env_id or canonical(self._env_kwargs) != canonical(env_kwargs):
                    raise InteractionLogError(
                        f"{self._path} logs {self._env_id} with env_kwargs {self._env_kwargs}, "
                        f"not {env_id} with {env_kwargs}: one log holds one env's observations; "
                        f"{NEW_LOG_HINT}."
                    )
                cursor = conn.execute(
                    "INSERT INTO servers (opened, model_hash, settings, rlagent_version) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        time.time(),
                        model_hash,
                        dumps(dict(settings or {}), where="settings"),
                        __version__,
                    ),
                )
                self._server_id: int | None = cursor.lastrowid
        except BaseException:
            self._conn.close()
            raise
        self._model_hash = model_hash

    @classmethod
    def for_reading(cls, path: str | os.PathLike) -> InteractionLog:
        """Open an existing log to read it (the writing methods then raise).

        Raises:
            InteractionLogError: No file at ``path``, or it is not an rlagent log of a
                supported ``schema_version``.
        """
        log = cls.__new__(cls)
        log._open(Path(path), create=False, synchronous="NORMAL", busy=10.0)
        try:
            with log._transaction(write=False) as conn:
                log._env_id, log._env_kwargs = read_meta(conn)
        except BaseException:
            log._conn.close()
            raise
        log._server_id = None
        log._model_hash = None
        return log

    def _open(self, path: Path, *, create: bool, synchronous: str, busy: float) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._closed = False
        self._conn = connect(path, create=create, synchronous=synchronous, busy=busy)

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run one transaction, committed on success, rolled back on error."""
        with self._lock:
            if self._closed:
                raise InteractionLogError(f"The interaction log {self._path} is closed.")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise InteractionLogError(
                    f"Could not {'write to' if write else 'read'} {self._path}: {exc}."
                ) from exc

    def _writer(self) -> int:
        if self._server_id is None:
            raise InteractionLogError(
                f"{self._path} was opened with InteractionLog.for_reading(); to write, open it "
                "with InteractionLog(path, model_hash=..., env_id=..., env_kwargs=...)."
            )
        return self._server_id

    @staticmethod
    def _session_state(conn: sqlite3.Connection, session_id: str) -> float | None:
        """The session's ``ended`` time (``None`` while open); raises for an unknown session."""
        row = conn.execute(
            "SELECT ended FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise InteractionLogError(
                f"Unknown session {session_id!r}: call start_session({session_id!r}, kind=...) "
                "before recording anything for it."
            )
        return row[0]

    # -- properties ------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The log file."""
        return self._path

    @property
    def env_id(self) -> str:
        """The environment the log was written for."""
        return self._env_id

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """Its keyword arguments."""
        return dict(self._env_kwargs)

    @property
    def schema_version(self) -> int:
        """The log's schema version (:data:`SCHEMA_VERSION`)."""
        return SCHEMA_VERSION

    @property
    def server_id(self) -> int | None:
        """This opening's ``servers`` row (``None`` when opened for reading)."""
        return self._server_id

    # -- writing ---------------------------------------------------------------------------

    def start_session(
        self, session_id: str, *, kind: str, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Start a session; its decisions, feedback and events may follow.

        Raises:
            InteractionLogError: The id is empty or already in the log.
        """
        server_id = self._writer()
        row = (
            text(session_id, "session_id"),
            text(kind, "kind"),
            time.time(),
            dumps(dict(meta or {}), where="meta"),
            server_id,
        )
        with self._transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if exists:
                raise InteractionLogError(
                    f"Session {session_id!r} is already in {self._path}; session ids are unique "
                    "(use a fresh random id)."
                )
            conn.execute(
                "INSERT INTO sessions (session_id, kind, started, meta, server_id) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )

    def record_decisions(self, rows: Sequence[DecisionRecord]) -> None:
        """Append decisions in ONE transaction: when this returns, all of them are committed.

        Acknowledge a decision to its client only after this returns. Either every row is
        written or none is (an error leaves the log as it was).

        Raises:
            InteractionLogError: A row is malformed (its field is named), its session is unknown
                or ended, or its ``(session_id, step)`` is already in the log.
        """
        server_id = self._writer()
        encoded = [(*decision_row(r, f"rows[{i}]"), server_id) for i, r in enumerate(rows)]
        if not encoded:
            return
        seen: set[tuple[str, int]] = set()
        for session_id, step, *_ in encoded:
            if (session_id, step) in seen:
                raise InteractionLogError(
                    f"rows holds step {step} of session {session_id!r} twice; steps are unique "
                    "per session."
                )
            seen.add((session_id, step))
        with self._transaction() as conn:
            for session_id in {row[0] for row in encoded}:
                if self._session_state(conn, session_id) is not None:
                    raise InteractionLogError(
                        f"Session {session_id!r} has ended; it takes no more decisions (start a "
                        "new session)."
                    )
            for session_id, step in seen:
                if conn.execute(
                    "SELECT 1 FROM decisions WHERE session_id = ? AND step = ?", (session_id, step)
                ).fetchone():
                    raise InteractionLogError(
                        f"Session {session_id!r} already has a decision at step {step}; steps "
                        "are unique per session."
                    )
            conn.executemany(
                f"INSERT INTO decisions ({DECISION_COLUMNS}, server_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                encoded,
            )

    def record_feedback(
        self,
        session_id: str,
        *,
        step: int | None = None,
        reward: float | None = None,
        resolved: bool | None = None,
        rating: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> int:
        """Record feedback on a session (open or ended), or on one of its decisions (``step``).

        Returns:
            The feedback's row id.

        Raises:
            InteractionLogError: Unknown session, a step with no decision, no feedback given,
                a non-finite reward or a rating outside 1..5.
        """
        self._writer()
        if reward is None and resolved is None and rating is None and not meta:
            raise InteractionLogError(
                "record_feedback got no feedback: give reward, resolved, rating or meta."
            )
        row = (
            text(session_id, "session_id"),
            None if step is None else integer(step, "step", low=0),
            time.time(),
            None if reward is None else finite(reward, "reward"),
            None if resolved is None else int(boolean(resolved, "resolved")),
            None if rating is None else integer(rating, "rating", low=1, high=5),
            dumps(dict(meta or {}), where="meta"),
        )
        with self._transaction() as conn:
            self._session_state(conn, session_id)
            if (
                step is not None
                and not conn.execute(
                    "SELECT 1 FROM decisions WHERE session_id = ? AND step = ?", (session_id, step)
                ).fetchone()
            ):
                raise InteractionLogError(
                    f"Session {session_id!r} has no decision at step {step}; give the step of a "
                    "recorded decision, or step=None for feedback on the whole session."
                )
            cursor = conn.execute(
                "INSERT INTO feedback (session_id, step, time, reward, resolved, rating, meta) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return int(cursor.lastrowid)

    def record_event(self, session_id: str, kind: str, payload: Mapping[str, Any]) -> None:
        """Record an event of a session (e.g. ``"customer_text"``, ``"click"``).

        Raises:
            InteractionLogError: Unknown session, or a payload that cannot be stored as JSON.
        """
        self._writer()
        row = (
            text(session_id, "session_id"),
            time.time(),
            text(kind, "kind"),
            dumps(dict(payload), where="payload"),
        )
        with self._transaction() as conn:
            self._session_state(conn, session_id)
            conn.execute(
                "INSERT INTO events (session_id, time, kind, payload) VALUES (?, ?, ?, ?)", row
            )

    def end_session(self, session_id: str, reason: str) -> None:
        """Mark a session ended (e.g. ``"done"``, ``"deleted"``, ``"expired"``).

        Raises:
            InteractionLogError: Unknown session, or one that has already ended.
        """
        self._writer()
        reason = text(reason, "reason")
        with self._transaction() as conn:
            if self._session_state(conn, session_id) is not None:
                raise InteractionLogError(f"Session {session_id!r} has already ended.")
            conn.execute(
                "UPDATE sessions SET ended = ?, end_reason = ? WHERE session_id = ?",
                (time.time(), reason, session_id),
            )

    def close(self) -> None:
        """Close the file (idempotent); the log's methods raise afterwards."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> InteractionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def _select(self, sql: str, session_id: str | None, order: str) -> list[tuple]:
        with self._transaction(write=False) as conn:
            if session_id is None:
                return conn.execute(f"{sql} ORDER BY {order}").fetchall()
            self._session_state(conn, session_id)
            return conn.execute(
                f"{sql} WHERE session_id = ? ORDER BY {order}", (session_id,)
            ).fetchall()

    def servers(self) -> list[ServerRecord]:
        """Every opening of the log for writing, oldest first."""
        rows = self._select(
            "SELECT id, opened, model_hash, settings, rlagent_version FROM servers", None, "id"
        )
        return [ServerRecord(r[0], r[1], r[2], loads(r[3]), r[4]) for r in rows]

    def sessions(self) -> list[SessionRecord]:
        """Every session, in the order they started."""
        rows = self._select(
            "SELECT session_id, kind, started, ended, end_reason, meta, server_id FROM sessions",
            None,
            "started, rowid",
        )
        return [SessionRecord(r[0], r[1], r[2], r[3], r[4], loads(r[5]), r[6]) for r in rows]

    def session(self, session_id: str) -> SessionRecord:
        """One session.

        Raises:
            InteractionLogError: Unknown session.
        """
        rows = self._select(
            "SELECT session_id, kind, started, ended, end_reason, meta, server_id FROM sessions",
            session_id,
            "rowid",
        )
        r = rows[0]
        return SessionRecord(r[0], r[1], r[2], r[3], r[4], loads(r[5]), r[6])

    def decisions(self, session_id: str | None = None) -> list[DecisionRecord]:
        """Decisions with observations decoded: one session's in step order, or all in commit order.

        Raises:
            InteractionLogError: Unknown session.
        """
        rows = self._select(
            f"SELECT {DECISION_COLUMNS} FROM decisions",
            session_id,
            "id" if session_id is None else "step",
        )
        return [
            DecisionRecord(
                session_id=r[0],
                step=r[1],
                time=r[2],
                observation=loads(r[3]),
                observation_text=r[4],
                action=loads(r[5]),
                action_name=r[6],
                probabilities=loads(r[7]),
                propensity=r[8],
                planner=loads(r[9]),
                model_hash=r[10],
            )
            for r in rows
        ]

    def feedback(self, session_id: str | None = None) -> list[FeedbackRecord]:
        """Feedback, in the order it was recorded (one session's, or all).

        Raises:
            InteractionLogError: Unknown session.
        """
        rows = self._select(
            "SELECT id, session_id, step, time, reward, resolved, rating, meta FROM feedback",
            session_id,
            "id",
        )
        return [
            FeedbackRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                None if r[5] is None else bool(r[5]),
                r[6],
                loads(r[7]),
            )
            for r in rows
        ]

    def events(self, session_id: str | None = None) -> list[EventRecord]:
        """Events, in the order they were recorded (one session's, or all).

        Raises:
            InteractionLogError: Unknown session.
        """
        rows = self._select(
            "SELECT id, session_id, time, kind, payload FROM events", session_id, "id"
        )
        return [EventRecord(r[0], r[1], r[2], r[3], loads(r[4])) for r in rows]
