"""Building, saving and loading PPO agents that read text."""

from rlagent.agents.candidates import CandidateLayoutError
from rlagent.agents.ppo import (
    PPO_DEFAULTS,
    NotATextModelError,
    TextActorCriticPolicy,
    load,
    make_ppo,
    make_vec_env,
    resolve_device,
    spec_of,
    wrap_for_model,
)
from rlagent.agents.slate import SlateDistribution

__all__ = [
    "CandidateLayoutError",
    "PPO_DEFAULTS",
    "NotATextModelError",
    "TextActorCriticPolicy",
    "load",
    "make_ppo",
    "make_vec_env",
    "resolve_device",
    "SlateDistribution",
    "spec_of",
    "wrap_for_model",
]
