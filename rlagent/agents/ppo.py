"""The names that lived here before the split, still importable from here.

The policy is in :mod:`rlagent.agents.policy`, ``make_ppo`` in :mod:`rlagent.agents.factory`,
``load`` in :mod:`rlagent.agents.loading` (a pickled file loads only with ``trust=True``), the
observation pipeline in :mod:`rlagent.pipeline`. Models saved while the policy class lived here
name it ``rlagent.agents.ppo.TextActorCriticPolicy``, so this module keeps them loadable.
"""

from rlagent.agents.factory import (
    DEFAULT_NET_ARCH,
    PPO_DEFAULTS,
    TRAINABLE_ENCODER_LEARNING_RATE,
    make_ppo,
    observation_function,
    resolve_device,
    spec_of,
    wrap_for_model,
)
from rlagent.agents.loading import load
from rlagent.agents.policy import TextActorCriticPolicy
from rlagent.pipeline import NotATextModelError, make_vec_env

__all__ = [
    "DEFAULT_NET_ARCH",
    "PPO_DEFAULTS",
    "TRAINABLE_ENCODER_LEARNING_RATE",
    "NotATextModelError",
    "TextActorCriticPolicy",
    "load",
    "make_ppo",
    "make_vec_env",
    "observation_function",
    "resolve_device",
    "spec_of",
    "wrap_for_model",
]
