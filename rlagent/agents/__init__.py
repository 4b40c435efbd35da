"""Building, saving and loading PPO agents that read text."""

from rlagent.agents.asymmetric import CriticOnlyError
from rlagent.agents.auxiliary import (
    AuxiliaryBottleneck,
    AuxiliaryLoss,
    AuxiliaryTargetsError,
    auxiliary_loss,
)
from rlagent.agents.candidates import CandidateLayoutError
from rlagent.agents.ppo import (
    PPO_DEFAULTS,
    NotATextModelError,
    TextActorCriticPolicy,
    load,
    make_ppo,
    make_vec_env,
    observation_function,
    resolve_device,
    spec_of,
    wrap_for_model,
)
from rlagent.agents.slate import SlateDistribution

__all__ = [
    "AuxiliaryBottleneck",
    "AuxiliaryLoss",
    "AuxiliaryTargetsError",
    "auxiliary_loss",
    "CandidateLayoutError",
    "CriticOnlyError",
    "PPO_DEFAULTS",
    "NotATextModelError",
    "TextActorCriticPolicy",
    "load",
    "make_ppo",
    "make_vec_env",
    "observation_function",
    "resolve_device",
    "SlateDistribution",
    "spec_of",
    "wrap_for_model",
]
