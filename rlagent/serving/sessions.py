"""Open sessions of a server: unguessable ids, one lock each, idle expiry."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from rlagent.serving.errors import ServingConfigError, SessionLimitError, UnknownSessionError

__all__ = ["Session", "SessionStore"]


@dataclass
class Session:
    """One conversation (or recommendation session) with its live state.

    Attributes:
        session_id: The id the client holds (32 url-safe random bytes' worth of entropy).
        live: The env's live session (``env.unwrapped.live_session()``).
        created: Wall-clock time of creation.
        last_used: Monotonic time of the last request.
        step: Decisions taken so far.
        lock: Serialises this session's requests.
    """

    session_id: str
    live: Any
    created: float
    last_used: float
    step: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionStore:
    """Sessions by id; ids come from :func:`secrets.token_urlsafe`.

    Args:
        ttl_s: Seconds of inactivity after which a session expires.
        max_sessions: Most open sessions; creating one more first expires idle ones, then
            refuses.

    Raises:
        ServingConfigError: If a bound is not positive.
    """

    def __init__(self, *, ttl_s: float = 1800.0, max_sessions: int = 10_000) -> None:
        if not ttl_s > 0 or max_sessions < 1:
            raise ServingConfigError(
                f"session_ttl_s={ttl_s!r} and max_sessions={max_sessions!r} must be positive."
            )
        self.ttl_s = float(ttl_s)
        self.max_sessions = int(max_sessions)
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, live: Any) -> Session:
        """Open a session around ``live`` and return it."""
        if len(self._sessions) >= self.max_sessions:
            self.expire()
            if len(self._sessions) >= self.max_sessions:
                raise SessionLimitError(
                    f"{len(self._sessions)} sessions are open, the server's limit "
                    f"(max_sessions={self.max_sessions}); end finished sessions with DELETE "
                    "/v1/sessions/{id} or try again later."
                )
        session_id = secrets.token_urlsafe(24)
        now = time.monotonic()
        session = Session(session_id, live, time.time(), now)
        self._sessions[session_id] = session
        return session

    def get(self, session_id: str) -> Session:
        """The open session ``session_id``, touched (its idle clock restarts).

        Raises:
            UnknownSessionError: No such open session (never created, ended or expired).
        """
        session = self._sessions.get(session_id)
        now = time.monotonic()
        if session is not None and now - session.last_used > self.ttl_s:
            del self._sessions[session_id]
            session = None
        if session is None:
            raise UnknownSessionError(
                "unknown session id: it was never created, was ended, or expired after "
                f"{self.ttl_s:g} s idle; start a new one with POST /v1/sessions."
            )
        session.last_used = now
        return session

    def remove(self, session_id: str) -> Session:
        """End ``session_id`` and return it (raises :class:`UnknownSessionError`)."""
        session = self.get(session_id)
        del self._sessions[session_id]
        return session

    def expire(self) -> list[Session]:
        """Drop sessions idle for longer than ``ttl_s``; returns them."""
        now = time.monotonic()
        gone = [s for s in self._sessions.values() if now - s.last_used > self.ttl_s]
        for s in gone:
            del self._sessions[s.session_id]
        return gone
