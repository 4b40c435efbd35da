"""Serving a trained agent: live sessions in, batched decisions out.

The layer an HTTP service stands on:

* :class:`ServedAgent` (``ServedAgent.load(MODEL_DIR, ...)``): the model, the env it reads,
  ``new_session()`` (the env's live session) and ``decide(observations, masks)``, one forward
  pass for a batch; each answer a :class:`Decision` (action, name, probabilities, propensity,
  value).
* Errors: :class:`ServingError`, :class:`ServingConfigError`, :class:`SessionInputError`
  (also a :class:`LiveInputError`, the live sessions' own error), :class:`PickledModelError`.
"""

from envs._live import LiveInputError
from rlagent.serving.agent import Decision, ServedAgent, model_hash
from rlagent.serving.errors import (
    PickledModelError,
    ServingConfigError,
    ServingError,
    SessionInputError,
)

__all__ = [
    "Decision",
    "LiveInputError",
    "PickledModelError",
    "ServedAgent",
    "ServingConfigError",
    "ServingError",
    "SessionInputError",
    "model_hash",
]
