"""Settings of a server: batching, sessions and input limits."""

from __future__ import annotations

from dataclasses import dataclass

from rlagent.serving.errors import ServingConfigError

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """How a server batches, keeps sessions and bounds its input.

    Attributes:
        max_batch: Most decisions per forward pass (1: one request at a time).
        max_wait_ms: Longest a request waits for others to share its forward pass.
        session_ttl_s: Seconds of inactivity after which a session expires.
        max_sessions: Most open sessions.
        max_text_chars: Longest customer text accepted (characters).
        max_body_bytes: Largest request body accepted (bytes).
        expire_every_s: How often idle sessions are swept.
    """

    max_batch: int = 32
    max_wait_ms: float = 5.0
    session_ttl_s: float = 1800.0
    max_sessions: int = 10_000
    max_text_chars: int = 2_000
    max_body_bytes: int = 262_144
    expire_every_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_sessions", "max_text_chars", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServingConfigError(f"{name}={value!r} must be an int >= 1.")
        for name in ("session_ttl_s", "expire_every_s"):
            if not getattr(self, name) > 0:
                raise ServingConfigError(f"{name}={getattr(self, name)!r} must be > 0 seconds.")
        if not self.max_wait_ms >= 0:
            raise ServingConfigError(f"max_wait_ms={self.max_wait_ms!r} must be >= 0.")
