"""Errors raised by the recommendation environment's API."""

from __future__ import annotations

__all__ = ["InvalidSlateError", "ResetNeededError"]


class InvalidSlateError(ValueError):
    """An action is not a valid slate for the environment's action space."""


class ResetNeededError(RuntimeError):
    """``step``/``observe`` was called before ``reset``."""
