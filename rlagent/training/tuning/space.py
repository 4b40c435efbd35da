"""From the search space to a trial's training run: its settings, progress and folder."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlagent.training.config import TrainConfig, load_config
from rlagent.training.tuning.config import NET_ARCHS, SearchSpace, TuneConfig

#: The evaluation metric trials report and the search maximises.
_METRIC = "mean_return"
logger = logging.getLogger(__package__)


def base_train_config(config: TuneConfig) -> TrainConfig:
    """The training configuration every trial starts from (before its sampled settings).

    Trials are scored on the env config's evaluation env (``eval_env_kwargs`` merged over
    ``env_kwargs``: the validation split ``split="val"`` for the customer-service env),
    updated by :attr:`TuneConfig.eval_env_kwargs`. Evaluations are spaced for
    ``n_evaluations`` per trial; checkpoints are written only at the end, the final model is
    not averaged over checkpoints and baselines are not evaluated.
    """
    base = load_config(
        config.env_id,
        config_file=config.config_file,
        env_kwargs=dict(config.env_kwargs),
        n_timesteps=config.timesteps,
        encoder=config.encoder,
        encoder_layers=None if config.encoder_layers is None else list(config.encoder_layers),
        eval_episodes=config.eval_episodes,
        n_envs=config.n_envs,
        device=config.device,
        seed=config.seed,
        checkpoint_freq=0,
        keep_checkpoints=1,
        average_checkpoints=0,
        baseline_episodes=0,
    )
    base = dataclasses.replace(
        base,
        eval_freq=max(base.n_timesteps // config.n_evaluations, 1),
        eval_env_kwargs={**(base.eval_env_kwargs or {}), **(config.eval_env_kwargs or {})},
    )
    if base.resolved_eval_env_kwargs.get("split") == "test":
        logger.warning(
            "Trials are scored on split='test' (eval env %s): hyperparameters chosen on the "
            "test split make its figure optimistic; score them on split='val' instead.",
            base.resolved_eval_env_kwargs,
        )
    return base


def sample_params(trial: Any, space: SearchSpace, *, n_envs: int, budget: int) -> dict[str, Any]:
    """Draw one trial's settings from ``space`` through an Optuna ``trial``.

    Args:
        trial: An ``optuna.Trial`` (or anything with its ``suggest_*`` methods).
        space: What to search.
        n_envs: Parallel envs per trial (for the rollout size).
        budget: Environment steps per trial.

    Returns:
        The sampled values by name (as stored in the study).
    """
    params: dict[str, Any] = {}
    if space.learning_rate is not None:
        low, high = space.learning_rate
        params["learning_rate"] = trial.suggest_float("learning_rate", low, high, log=True)
    if space.n_steps:
        fitting = [n for n in space.n_steps if n * n_envs <= budget] or [min(space.n_steps)]
        params["n_steps"] = trial.suggest_categorical("n_steps", fitting)
    for name in ("n_minibatches", "n_epochs", "gamma", "gae_lambda"):
        if getattr(space, name):
            params[name] = trial.suggest_categorical(name, list(getattr(space, name)))
    if space.ent_coef is not None:
        low, high = space.ent_coef
        params["ent_coef"] = trial.suggest_float("ent_coef", low, high, log=True)
    for name in ("clip_range", "net_arch", "max_length", "pooling"):
        if getattr(space, name):
            params[name] = trial.suggest_categorical(name, list(getattr(space, name)))
    return params


def params_to_overrides(params: Mapping[str, Any], base: TrainConfig) -> dict[str, Any]:
    """Turn sampled ``params`` into :class:`~rlagent.training.TrainConfig` field values.

    ``n_minibatches`` becomes ``batch_size``; ``net_arch`` names become layer sizes;
    ``pooling`` goes to the text extractor; the rest are PPO arguments.

    Args:
        params: Values from :func:`sample_params`.
        base: The configuration the trial starts from.

    Returns:
        ``{"ppo": ..., "policy_kwargs": ..., "max_length": ...}`` merged over ``base``.
    """
    ppo = dict(base.ppo)
    policy_kwargs = dict(base.policy_kwargs)
    overrides: dict[str, Any] = {}
    for name, value in params.items():
        if name == "net_arch":
            policy_kwargs["net_arch"] = {k: list(v) for k, v in NET_ARCHS[value].items()}
        elif name == "pooling":
            extractor = dict(policy_kwargs.get("features_extractor_kwargs") or {})
            extractor["pooling"] = value
            policy_kwargs["features_extractor_kwargs"] = extractor
        elif name == "max_length":
            overrides["max_length"] = int(value)
        elif name != "n_minibatches":
            ppo[name] = value
    if "n_minibatches" in params:
        n_steps = int(ppo["n_steps"])  # SearchSpace pairs n_minibatches with n_steps
        ppo["batch_size"] = max(n_steps * base.n_envs // int(params["n_minibatches"]), 1)
    overrides["ppo"] = ppo
    overrides["policy_kwargs"] = policy_kwargs
    return overrides


def progress_step(timesteps: int, eval_freq: int) -> int:
    """The step an evaluation is reported at: its timesteps in units of ``eval_freq``, rounded.

    Trials with different rollout lengths evaluate at slightly different timesteps; reporting
    progress rather than an evaluation count lets pruners compare trials at equal training.
    """
    return max(1, math.floor(timesteps / max(eval_freq, 1) + 0.5))


def _max_step(config: TuneConfig, base: TrainConfig) -> int:
    """The largest step a trial can report (budgets round up to whole rollouts)."""
    sizes = [n * base.n_envs for n in config.search_space.n_steps] or [base.n_timesteps]
    target = max(math.ceil(base.n_timesteps / size) * size for size in sizes)
    return progress_step(target, base.eval_freq)


def _trial_config(base: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    return dataclasses.replace(base, **params_to_overrides(params, base))


def _trial_dir(out_dir: Path, number: int) -> Path:
    return out_dir / "trials" / f"trial_{number}"
