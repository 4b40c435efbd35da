"""Serving a trained agent over HTTP: live sessions in, batched decisions out, all logged.

* :class:`ServedAgent` (``ServedAgent.load(MODEL_DIR, ...)``): the model, the env it reads,
  ``new_session()`` (the env's live session) and ``decide(observations, masks)``, one forward
  pass for a batch; each answer a :class:`Decision` (action, name, probabilities, propensity,
  value).
* :func:`create_app` / :func:`build_app` / :func:`serve`: the FastAPI app (JSON API, web
  pages, metrics) and ``rlagent serve``.
* :class:`InteractionLog`: the durable SQLite log; :func:`export_minari` writes it as a Minari
  dataset.

See docs/serving.md.
"""

from envs._live import LiveInputError
from rlagent.serving.agent import Decision, ServedAgent, model_hash
from rlagent.serving.app import create_app
from rlagent.serving.background import BackgroundServer
from rlagent.serving.batching import MicroBatcher
from rlagent.serving.config import ServeConfig
from rlagent.serving.customers import CustomerRun, CustomersError, play_customers
from rlagent.serving.errors import (
    PickledModelError,
    ServingConfigError,
    ServingError,
    SessionInputError,
    SessionLimitError,
    SessionStateError,
    UnknownSessionError,
)
from rlagent.serving.exploration import Exploration
from rlagent.serving.interaction_log import DecisionRecord, InteractionLog
from rlagent.serving.log_export import export_minari
from rlagent.serving.server import DEFAULT_LOG, build_app, serve

__all__ = [
    "BackgroundServer",
    "DEFAULT_LOG",
    "CustomerRun",
    "CustomersError",
    "Decision",
    "DecisionRecord",
    "Exploration",
    "InteractionLog",
    "LiveInputError",
    "MicroBatcher",
    "PickledModelError",
    "ServeConfig",
    "ServedAgent",
    "ServingConfigError",
    "ServingError",
    "SessionInputError",
    "SessionLimitError",
    "SessionStateError",
    "UnknownSessionError",
    "build_app",
    "create_app",
    "export_minari",
    "model_hash",
    "play_customers",
    "serve",
]
