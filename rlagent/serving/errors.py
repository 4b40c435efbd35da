"""Errors of the serving layer, each saying what was wrong and how to fix it.

* :class:`ServingError`: the base class of every serving error.
* :class:`ServingConfigError`: the agent cannot be served as asked (a pickled model, an env
  without live sessions, a planner the env does not support, a bad server setting); raised at
  start-up.
* :class:`SessionInputError`: what a client sent cannot be decided on (empty or oversized
  text, wrong candidates). It is also an :class:`envs._live.LiveInputError`, the error of the
  live sessions themselves, so catching ``LiveInputError`` catches every bad client input.
* :class:`UnknownSessionError`, :class:`SessionLimitError`, :class:`SessionStateError`: the
  session a request names does not exist, no more sessions fit, or the request does not fit
  the session's state or kind.
* :class:`PickledModelError`: a pickled model was given; it is both a
  :class:`ServingConfigError` and an :class:`rlagent.agents.UntrustedModelError`.

The HTTP app answers each with a 4xx status and a JSON ``{"error": message}``.
"""

from __future__ import annotations

import os

from envs._live import LiveInputError
from rlagent.agents.trust import UntrustedModelError

__all__ = [
    "LiveInputError",
    "PickledModelError",
    "ServingConfigError",
    "ServingError",
    "SessionInputError",
    "SessionLimitError",
    "SessionStateError",
    "UnknownSessionError",
    "pickled_model_message",
]


class ServingError(Exception):
    """Base class of the errors raised by :mod:`rlagent.serving`."""


class ServingConfigError(ServingError, ValueError):
    """The agent cannot be served with these settings; the message says what to change."""


class SessionInputError(ServingError, LiveInputError):
    """Input from a client (text, candidates, observations, masks) that cannot be decided on."""


class UnknownSessionError(ServingError, KeyError):
    """No open session has this id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SessionLimitError(ServingError):
    """The server holds as many open sessions as it allows."""


class SessionStateError(ServingError):
    """The request does not fit the session's state or kind (e.g. a click before a slate)."""


class PickledModelError(ServingConfigError, UntrustedModelError):
    """A pickled model was given to serve; a service loads only the safe model format."""


def pickled_model_message(path: str | os.PathLike) -> str:
    """The one-line refusal to serve the pickled model at ``path``."""
    path = os.fspath(path)
    return (
        f"{path} is a pickled model (a Stable-Baselines3 .zip): loading it runs code stored in "
        "its pickle, which can do anything a program you run can do, so a service never loads "
        "one. If you trust where the file came from, convert it once with `rlagent export "
        f"{path} OUT` (rlagent.agents.export_model) and serve OUT, which holds only weights "
        "and JSON."
    )
