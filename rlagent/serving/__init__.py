"""Serving a trained agent over HTTP: sessions, batched decisions, the interaction log."""

from rlagent.serving.app import create_app
from rlagent.serving.batching import MicroBatcher
from rlagent.serving.config import ServeConfig
from rlagent.serving.errors import (
    ServingConfigError,
    ServingError,
    SessionInputError,
    SessionLimitError,
    SessionStateError,
    UnknownSessionError,
)
from rlagent.serving.server import DEFAULT_LOG, build_app, serve

__all__ = [
    "DEFAULT_LOG",
    "MicroBatcher",
    "ServeConfig",
    "ServingConfigError",
    "ServingError",
    "SessionInputError",
    "SessionLimitError",
    "SessionStateError",
    "UnknownSessionError",
    "build_app",
    "create_app",
    "serve",
]
