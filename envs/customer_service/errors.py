"""Exceptions raised by the customer-service environment, each naming what to fix."""

from __future__ import annotations

from gymnasium import error

__all__ = [
    "CustomerServiceConfigError",
    "DatasetFormatError",
    "EpisodeFinishedError",
    "InvalidActionError",
]


class CustomerServiceConfigError(ValueError):
    """A constructor argument of :class:`CustomerServiceEnv` (or a config) is out of range."""


class DatasetFormatError(ValueError):
    """A dataset CSV or group-mapping file is malformed; the message names file and line."""


class EpisodeFinishedError(error.ResetNeeded):
    """``step`` was called after the episode ended; call ``reset`` first."""


class InvalidActionError(ValueError):
    """``step`` received an action outside ``action_space``."""
