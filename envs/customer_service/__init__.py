"""Customer-service dialogue environment: simulated customers, corpus, datasets, baselines.

``CustomerServiceEnv`` is registered as ``rlagent/CustomerService-v0``.
"""

from __future__ import annotations

from envs.customer_service.baselines import (
    HeuristicPolicy,
    LabelledPolicy,
    OraclePolicy,
    RandomPolicy,
)
from envs.customer_service.config import RewardConfig
from envs.customer_service.corpus import (
    CORPORA,
    MOODS,
    UtteranceBank,
    builtin_bank,
    builtin_intents,
    corpus_statistics,
    iter_openings,
)
from envs.customer_service.dataset import (
    DatasetNotFoundError,
    dataset_bank,
    load_groups,
    read_dataset,
    validation_split,
)
from envs.customer_service.env import CustomerServiceEnv, DialogueState, TurnKind
from envs.customer_service.errors import (
    CustomerServiceConfigError,
    DatasetFormatError,
    EpisodeFinishedError,
    InvalidActionError,
)
from envs.customer_service.live import LiveDialogue, LiveInputError

__all__ = [
    "CORPORA",
    "MOODS",
    "CustomerServiceConfigError",
    "CustomerServiceEnv",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DialogueState",
    "EpisodeFinishedError",
    "HeuristicPolicy",
    "InvalidActionError",
    "LabelledPolicy",
    "LiveDialogue",
    "LiveInputError",
    "OraclePolicy",
    "RandomPolicy",
    "RewardConfig",
    "TurnKind",
    "UtteranceBank",
    "builtin_bank",
    "builtin_intents",
    "corpus_statistics",
    "dataset_bank",
    "iter_openings",
    "load_groups",
    "read_dataset",
    "validation_split",
]
