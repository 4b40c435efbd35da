"""Errors of the serving package; the app turns each into a 4xx with a JSON message."""

from __future__ import annotations

__all__ = [
    "ServingError",
    "ServingConfigError",
    "SessionInputError",
    "UnknownSessionError",
    "SessionLimitError",
    "SessionStateError",
]


class ServingError(Exception):
    """Base class of the errors raised by :mod:`rlagent.serving`."""


class ServingConfigError(ServingError, ValueError):
    """A server setting is invalid (a bound, a planner, an env the model cannot serve)."""


class SessionInputError(ServingError, ValueError):
    """A client's input to a session is invalid (empty or oversized text, bad candidates)."""


class UnknownSessionError(ServingError, KeyError):
    """No open session has this id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SessionLimitError(ServingError):
    """The server holds as many open sessions as it allows."""


class SessionStateError(ServingError):
    """The request does not fit the session's state or kind (e.g. a turn after it ended)."""
