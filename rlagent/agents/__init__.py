"""Building, saving and loading PPO agents that read text."""

from rlagent.agents.asymmetric import CriticOnlyError
from rlagent.agents.auxiliary import (
    AuxiliaryBottleneck,
    AuxiliaryLoss,
    AuxiliaryTargetsError,
    auxiliary_loss,
)
from rlagent.agents.behaviour_cloning import (
    BehaviourCloning,
    CloningScores,
    behaviour_cloning_loss,
    cloning_scores,
    policy_agreement,
)
from rlagent.agents.candidates import CandidateLayoutError
from rlagent.agents.demonstrations import (
    Demonstrations,
    ExpertError,
    WarmStartError,
    collect_demonstrations,
    make_expert,
)
from rlagent.agents.encoder_dtype import (
    AgreementReport,
    check_agreement,
    encoder_dtype_of,
    resolve_encoder_dtype,
    set_encoder_dtype,
)
from rlagent.agents.factory import (
    PPO_DEFAULTS,
    make_ppo,
    observation_function,
    resolve_device,
    spec_of,
    wrap_for_model,
)
from rlagent.agents.initial_weights import InitModelError, load_initial_weights
from rlagent.agents.loading import (
    ModelEnvMismatchError,
    export_model,
    load,
    load_model,
    read_policy_state,
)
from rlagent.agents.manifest import UnsupportedModelError
from rlagent.agents.offline_learning import (
    OfflineConfig,
    OfflineLearningError,
    OfflineScores,
    advantage_weights,
    fit_offline,
    lambda_returns,
    logged_action_probabilities,
    offline_scores,
    prior_ratios,
)
from rlagent.agents.policy import TextActorCriticPolicy
from rlagent.agents.saving import ModelFileError, read_manifest, save_model
from rlagent.agents.settings import AgentConfig, AuxiliaryConfig, ConfigError
from rlagent.agents.slate import SlateDistribution
from rlagent.agents.text_ppo import TextPPO
from rlagent.agents.trust import UntrustedFileError, UntrustedModelError, is_pickled_model
from rlagent.agents.warm_starting import (
    WarmStartConfig,
    WarmStartResult,
    model_demonstrations,
    warm_start,
)
from rlagent.encoders.dtypes import EncoderDtypeError
from rlagent.pipeline import NotATextModelError, ObservationPipeline, make_vec_env, pipeline_of

__all__ = [
    "AgentConfig",
    "AgreementReport",
    "EncoderDtypeError",
    "check_agreement",
    "encoder_dtype_of",
    "resolve_encoder_dtype",
    "set_encoder_dtype",
    "AuxiliaryConfig",
    "ConfigError",
    "AuxiliaryBottleneck",
    "AuxiliaryLoss",
    "AuxiliaryTargetsError",
    "auxiliary_loss",
    "BehaviourCloning",
    "behaviour_cloning_loss",
    "CloningScores",
    "cloning_scores",
    "collect_demonstrations",
    "Demonstrations",
    "ExpertError",
    "make_expert",
    "model_demonstrations",
    "policy_agreement",
    "WarmStartConfig",
    "WarmStartError",
    "WarmStartResult",
    "warm_start",
    "InitModelError",
    "load_initial_weights",
    "OfflineConfig",
    "OfflineLearningError",
    "OfflineScores",
    "advantage_weights",
    "lambda_returns",
    "logged_action_probabilities",
    "prior_ratios",
    "fit_offline",
    "offline_scores",
    "CandidateLayoutError",
    "CriticOnlyError",
    "ModelEnvMismatchError",
    "ModelFileError",
    "PPO_DEFAULTS",
    "NotATextModelError",
    "TextActorCriticPolicy",
    "TextPPO",
    "UnsupportedModelError",
    "UntrustedFileError",
    "UntrustedModelError",
    "export_model",
    "is_pickled_model",
    "load",
    "load_model",
    "make_ppo",
    "make_vec_env",
    "ObservationPipeline",
    "observation_function",
    "pipeline_of",
    "read_manifest",
    "read_policy_state",
    "resolve_device",
    "SlateDistribution",
    "save_model",
    "spec_of",
    "wrap_for_model",
]
