"""The bundled environment classes, reachable through ``rlagent`` alone.

The environments live in the top-level package ``envs``; PyPI has an unrelated package of
that name, so prefer ``from rlagent.envs import CustomerServiceEnv`` in your code.
"""

from __future__ import annotations

from envs import ENV_IDS
from envs._live import LiveInputError
from envs._text import CHARSET, clean_text, text_space
from envs.customer_service import CustomerServiceEnv, LiveDialogue
from envs.recommendation import LiveRecommendation, RecommendationEnv

__all__ = [
    "CHARSET",
    "ENV_IDS",
    "CustomerServiceEnv",
    "LiveDialogue",
    "LiveInputError",
    "LiveRecommendation",
    "RecommendationEnv",
    "clean_text",
    "text_space",
]
