"""rlagent: reinforcement-learning agents that read text.

Importing ``rlagent`` registers the bundled environments (``rlagent/CustomerService-v0``,
``rlagent/Recommendation-v0``) with Gymnasium. The heavier parts (torch, transformers,
Stable-Baselines3) load on first use of the names below.

Example:
    >>> import rlagent
    >>> model = rlagent.make_ppo("rlagent/CustomerService-v0", seed=0)  # doctest: +SKIP
    >>> model.learn(20_000)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

import envs as _envs  # noqa: F401  (registers the bundled environments)

__version__ = "0.1.0"

_LAZY = {
    "AgentConfig": "rlagent.agents",
    "AuxiliaryConfig": "rlagent.agents",
    "TextPPO": "rlagent.agents",
    "make_ppo": "rlagent.agents",
    "load": "rlagent.agents",
    "load_model": "rlagent.agents",
    "save_model": "rlagent.agents",
    "export_model": "rlagent.agents",
    "make_vec_env": "rlagent.agents",
    "wrap_for_model": "rlagent.agents",
    "spec_of": "rlagent.agents",
    "TextActorCriticPolicy": "rlagent.agents",
    "ObservationPipeline": "rlagent.pipeline",
    "make_env": "rlagent.env_making",
    "evaluate": "rlagent.evaluation",
    "EvalResult": "rlagent.evaluation",
    "load_encoder": "rlagent.encoders",
    "finetune": "rlagent.finetuning",
    "FinetuneConfig": "rlagent.finetuning",
    "load_classifier": "rlagent.finetuning",
    "evaluate_classifier": "rlagent.finetuning",
    "TextFeaturesExtractor": "rlagent.encoders",
    "TokenizeText": "rlagent.wrappers",
    "train": "rlagent.training",
    "TrainConfig": "rlagent.training",
    "MCTS": "rlagent.planning",
    "MCTSConfig": "rlagent.planning",
    "WarmStartConfig": "rlagent.agents",
    "warm_start": "rlagent.agents",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlagent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
