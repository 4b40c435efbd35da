"""Building, saving and loading PPO agents that read text."""

from rlagent.agents.asymmetric import CriticOnlyError
from rlagent.agents.auxiliary import (
    AuxiliaryBottleneck,
    AuxiliaryLoss,
    AuxiliaryTargetsError,
    auxiliary_loss,
)
from rlagent.agents.candidates import CandidateLayoutError
from rlagent.agents.factory import (
    PPO_DEFAULTS,
    load,
    make_ppo,
    observation_function,
    resolve_device,
    spec_of,
    wrap_for_model,
)
from rlagent.agents.policy import TextActorCriticPolicy
from rlagent.agents.settings import AgentConfig, AuxiliaryConfig, ConfigError
from rlagent.agents.slate import SlateDistribution
from rlagent.agents.text_ppo import TextPPO
from rlagent.pipeline import NotATextModelError, ObservationPipeline, make_vec_env, pipeline_of

__all__ = [
    "AgentConfig",
    "AuxiliaryConfig",
    "ConfigError",
    "AuxiliaryBottleneck",
    "AuxiliaryLoss",
    "AuxiliaryTargetsError",
    "auxiliary_loss",
    "CandidateLayoutError",
    "CriticOnlyError",
    "PPO_DEFAULTS",
    "NotATextModelError",
    "TextActorCriticPolicy",
    "TextPPO",
    "load",
    "make_ppo",
    "make_vec_env",
    "ObservationPipeline",
    "observation_function",
    "pipeline_of",
    "resolve_device",
    "SlateDistribution",
    "spec_of",
    "wrap_for_model",
]
