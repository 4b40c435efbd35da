"""Building, saving and loading PPO agents that read text."""

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

__all__ = [
    "PPO_DEFAULTS",
    "NotATextModelError",
    "TextActorCriticPolicy",
    "load",
    "make_ppo",
    "make_vec_env",
    "resolve_device",
    "spec_of",
    "wrap_for_model",
]
