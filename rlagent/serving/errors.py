"""Errors of the serving layer, each saying what was wrong and how to fix it.

* :class:`ServingError`: the base class of every serving error.
* :class:`ServingConfigError`: the agent cannot be served as asked (a pickled model, an env
  without live sessions, a planner the env does not support...); raised at start-up.
* :class:`SessionInputError`: what a client sent cannot be decided on. It is also an
  :class:`envs._live.LiveInputError`, the error of the live sessions themselves, so catching
  ``LiveInputError`` catches every bad client input (a service answers it with a 4xx).
* :class:`PickledModelError`: a pickled model was given; it is both a
  :class:`ServingConfigError` and an :class:`rlagent.agents.UntrustedModelError`.
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
    "pickled_model_message",
]


class ServingError(Exception):
    """Base class of the errors raised by :mod:`rlagent.serving`."""


class ServingConfigError(ServingError, ValueError):
    """The agent cannot be served with these settings; the message says what to change."""


class SessionInputError(ServingError, LiveInputError):
    """Input from a client (observations, masks, sessions) that the agent cannot decide on."""


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
