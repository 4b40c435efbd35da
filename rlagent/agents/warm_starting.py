"""A warm start from labels: the policy learns what an expert does before PPO starts.

PPO learns what a piece of text means only through the advantage of the actions it tries, a
weak and noisy signal. An env that can label its own states has a stronger one: its expert (the
customer-service oracle, which reads the hidden intent and mood) knows the right action in
every state the simulator makes. :func:`warm_start` plays the expert in the training env,
records each state as the model reads it (:mod:`rlagent.agents.demonstrations`), and trains the
policy on them for a few epochs: cross-entropy of its action distribution to the expert's
actions, a value loss to the discounted returns the expert obtained (under the rewards PPO
learns from), and the auxiliary loss when the policy has an auxiliary head. An expert acting on
hidden information can do what the text does not show (resolve a vague request's true group);
cross-entropy to its actions then teaches the best guess from the text.

PPO then continues from the warm-started policy, and :class:`rlagent.agents.BehaviourCloning`
keeps it from forgetting: a behaviour-cloning term on the demonstrations whose weight decays to
0 over ``bc_decay_steps``. The settings are :class:`WarmStartConfig` (the ``warm_start:`` group
of a training config; ``rlagent train --warm-start``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlagent.agents._checks import ConfigError, check_known, check_ranges, is_integer, is_number
from rlagent.agents.auxiliary import auxiliary_loss
from rlagent.agents.behaviour_cloning import cloning_scores, supervised_epoch
from rlagent.agents.demonstrations import (
    Demonstrations,
    Expert,
    WarmStartError,
    build_env,
    collect_demonstrations,
    default_expert,
)
from rlagent.pipeline import pipeline_of

__all__ = ["WarmStartConfig", "WarmStartResult", "model_demonstrations", "warm_start"]

#: The demonstrations' first episode seed is the model's seed plus this (training envs use the
#: seed itself, evaluations ``seed + 10_000``); validation demonstrations add it twice.
DEMONSTRATION_SEED_OFFSET = 20_000
#: States per forward pass when scoring the policy on demonstrations.
_SCORE_BATCH = 256


@dataclass(frozen=True)
class WarmStartConfig:
    """A warm start from an expert's demonstrations, then a decaying behaviour-cloning term.

    YAML: the ``warm_start:`` group of a training config; ``rlagent train --warm-start`` sets
    ``enabled``. See :func:`warm_start` and :class:`rlagent.agents.BehaviourCloning`.

    Attributes:
        enabled: Warm-start the agent before PPO (off by default).
        expert: The env's baseline that demonstrates (a name in its ``BASELINES``); ``None``
            (default): the env's own choice, its ``EXPERT`` attribute (customer service:
            ``"labelled"``, which resolves the labelled group of a specific request and asks on
            a vague one), else ``"oracle"``, which reads the hidden state.
        episodes: Expert episodes played in the training env.
        epochs: Passes over the demonstrations before PPO.
        learning_rate: Learning rate of the warm start's Adam optimizer.
        batch_size: Demonstrations per minibatch (warm start and behaviour cloning).
        value_coef: Weight of the critic's loss to the expert's returns.
        bc_coef: Weight of the behaviour-cloning term when PPO starts (0: none).
        bc_decay_steps: Timesteps over which that weight falls linearly to 0.
        bc_batches: Behaviour-cloning minibatches after each rollout.
    """

    enabled: bool = False
    expert: str | None = None
    episodes: int = 500
    epochs: int = 20
    learning_rate: float = 1e-3
    batch_size: int = 64
    value_coef: float = 0.5
    bc_coef: float = 1.0
    bc_decay_steps: int = 50_000
    bc_batches: int = 4

    def __post_init__(self) -> None:
        check_ranges(
            "warm_start.",
            self,
            {
                "enabled": (isinstance(self.enabled, bool), "true or false"),
                "expert": (
                    self.expert is None or (isinstance(self.expert, str) and bool(self.expert)),
                    "the name of one of the env's baselines, e.g. 'oracle'",
                ),
                "episodes": (is_integer(self.episodes) and self.episodes >= 1, "an integer >= 1"),
                "epochs": (is_integer(self.epochs) and self.epochs >= 0, "an integer >= 0"),
                "learning_rate": (
                    is_number(self.learning_rate) and self.learning_rate > 0,
                    "a number > 0",
                ),
                "batch_size": (
                    is_integer(self.batch_size) and self.batch_size >= 1,
                    "an integer >= 1",
                ),
                "value_coef": (
                    is_number(self.value_coef) and self.value_coef >= 0,
                    "a number >= 0 (0: the critic is not warm-started)",
                ),
                "bc_coef": (
                    is_number(self.bc_coef) and self.bc_coef >= 0,
                    "a number >= 0 (0: no behaviour cloning during PPO)",
                ),
                "bc_decay_steps": (
                    is_integer(self.bc_decay_steps) and self.bc_decay_steps >= 0,
                    "an integer >= 0 (timesteps; 0: no behaviour cloning during PPO)",
                ),
                "bc_batches": (
                    is_integer(self.bc_batches) and self.bc_batches >= 1,
                    "an integer >= 1",
                ),
            },
        )

    @property
    def clones_during_ppo(self) -> bool:
        """Whether PPO keeps a behaviour-cloning term (``bc_coef`` and ``bc_decay_steps > 0``)."""
        return self.bc_coef > 0 and self.bc_decay_steps > 0

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "warm_start") -> WarmStartConfig:
        """The group from a mapping of its fields; ``True`` is the defaults, switched on.

        ``False`` is the defaults, off.

        Raises:
            ConfigError: ``data`` is not a mapping, or names an unknown field.
        """
        if isinstance(data, WarmStartConfig):
            return data
        if isinstance(data, bool):
            return cls(enabled=data)
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{source} must be a mapping of warm-start settings (enabled, episodes, epochs, "
                f"...), or true for the defaults; got {data!r}"
            )
        check_known(data, {f.name for f in dataclasses.fields(cls)}, f"{source}:", "warm_start")
        return cls(**data)


@dataclass(frozen=True)
class WarmStartResult:
    """What a warm start did and how well the policy agrees with the expert afterwards.

    Attributes:
        expert: The expert (its baseline name, or the function's name).
        episodes: Expert episodes played in the training env.
        transitions: Demonstration states (decisions of the expert).
        epochs: Passes over them.
        seed: Episode seed of the first demonstration (the rest follow it).
        accuracy_before: Share of demonstration states where the policy's most likely action
            was the expert's before the warm start.
        accuracy: The same after it.
        majority_accuracy: Share of the expert's most frequent action (what always choosing
            it would score).
        policy_loss: Mean negative log-likelihood of the expert's actions after it
            (evaluation mode).
        value_loss: Mean squared error of the critic to the expert's returns after it.
        masked_expert_actions: Expert actions the action mask forbade (left out of the
            cross-entropy).
        wall_time_s: Seconds it took, demonstrations included.
        rebuildable: The demonstrations can be rebuilt from the model's settings (a
            registered env id and a named expert), as a resumed run does.
        val_episodes: Expert episodes in the validation env (0: none).
        val_accuracy: Agreement on the validation demonstrations (``None`` without).
        val_value_loss: Critic error on them (``None`` without).
    """

    expert: str
    episodes: int
    transitions: int
    epochs: int
    seed: int
    accuracy_before: float
    accuracy: float
    majority_accuracy: float
    policy_loss: float
    value_loss: float
    masked_expert_actions: int
    wall_time_s: float
    rebuildable: bool
    val_episodes: int = 0
    val_accuracy: float | None = None
    val_value_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


def _config_of(model: Any, config: WarmStartConfig | Mapping[str, Any] | bool | None) -> Any:
    if config is None:
        config = (getattr(model, "rlagent_spec", None) or {}).get("warm_start") or {}
    config = WarmStartConfig.from_dict(config)
    return dataclasses.replace(config, enabled=True)


def _seed_of(model: Any) -> int:
    seed = (getattr(model, "rlagent_spec", None) or {}).get("seed")
    return int(seed or 0) + DEMONSTRATION_SEED_OFFSET


def _expert_name(expert: Expert | None, env: Any, env_kwargs: Mapping[str, Any] | None) -> str:
    if expert is None:
        if isinstance(env, str):
            raw = build_env(env, env_kwargs)
            try:
                return default_expert(raw)
            finally:
                raw.close()
        return default_expert(env)
    return expert if isinstance(expert, str) else getattr(expert, "__name__", repr(expert))


def _collect(
    model: Any,
    env: Any,
    env_kwargs: Mapping[str, Any] | None,
    expert: Expert,
    episodes: int,
    seed: int,
) -> Demonstrations:
    spec = getattr(model, "rlagent_spec", None) or {}
    raw = build_env(env, env_kwargs)
    try:
        return collect_demonstrations(
            raw,
            pipeline_of(model),
            expert,
            episodes=episodes,
            seed=seed,
            gamma=float(model.gamma),
            reward_scale=float(spec.get("reward_scale", 1.0)),
            reward_shaping=bool(spec.get("reward_shaping", False)),
            expected_rewards=bool(spec.get("expected_rewards", False)),
        )
    finally:
        if raw is not env:
            raw.close()


def model_demonstrations(model: Any) -> Demonstrations:
    """The demonstrations of ``model``'s warm start, rebuilt from its saved settings.

    The same env id, env kwargs, expert, episodes and seeds give the same demonstrations, so a
    resumed run rebuilds them rather than saving them.

    Raises:
        WarmStartError: The model has no warm-start settings, or they cannot be rebuilt (an env
            passed as an instance, an expert passed as a function).
    """
    spec = getattr(model, "rlagent_spec", None) or {}
    if not spec.get("warm_start"):
        raise WarmStartError("The model has no warm-start settings (rlagent_spec['warm_start']).")
    config = WarmStartConfig.from_dict(spec["warm_start"])
    record = spec.get("warm_started") or {}
    env_id = spec.get("env_id")
    if not record.get("rebuildable", True) or env_id is None:
        raise WarmStartError(
            "The warm start's demonstrations cannot be rebuilt from the model's settings (its "
            "env was passed as an instance, or its expert as a function); set "
            "model.behaviour_cloning.demonstrations = rlagent.agents.collect_demonstrations("
            "...) before learn, or warm_start.bc_coef: 0."
        )
    seed = int(record.get("seed", _seed_of(model)))
    return _collect(model, env_id, spec.get("env_kwargs"), config.expert, config.episodes, seed)


def _majority(demonstrations: Demonstrations) -> float:
    if not len(demonstrations):
        return 0.0
    rows = demonstrations.actions.reshape(len(demonstrations), -1)
    _, counts = np.unique(rows, axis=0, return_counts=True)
    return float(counts.max() / len(demonstrations))


def _train(
    model: Any,
    demonstrations: Demonstrations,
    config: WarmStartConfig,
    rng: np.random.Generator,
    logger: Any,
) -> None:
    """The supervised epochs (``warm_start/*`` curves, one point per epoch, on ``logger``)."""
    policy = model.policy
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    auxiliary = getattr(policy, "auxiliary_targets", None) is not None
    auxiliary_coef = float(((model.rlagent_spec or {}).get("auxiliary") or {}).get("coef") or 1.0)
    for epoch in range(config.epochs):
        losses = supervised_epoch(
            policy,
            demonstrations,
            optimizer,
            batch_size=config.batch_size,
            rng=rng,
            max_grad_norm=model.max_grad_norm,
            value_coef=config.value_coef,
            extra_loss=(lambda obs: auxiliary_loss(policy, obs)) if auxiliary else None,
            extra_coef=auxiliary_coef,
        )
        if logger is not None:
            logger.record("warm_start/policy_loss", losses["policy_loss"])
            logger.record("warm_start/value_loss", losses["value_loss"])
            if auxiliary:
                logger.record("warm_start/auxiliary_loss", losses["extra_loss"])
            logger.dump(epoch + 1)
    policy.set_training_mode(False)


def warm_start(
    model: Any,
    env: str | gym.Env | Callable[..., gym.Env] | None = None,
    config: WarmStartConfig | Mapping[str, Any] | bool | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    expert: Expert | None = None,
    val_env: str | gym.Env | Callable[..., gym.Env] | None = None,
    val_env_kwargs: Mapping[str, Any] | None = None,
    logger: Any = None,
) -> WarmStartResult:
    """Teach ``model``'s policy and critic what the env's expert does, before PPO.

    Plays ``config.episodes`` episodes of the expert in the training env, records each state
    through the model's observation pipeline, and trains the policy for ``config.epochs``
    passes (Adam at ``config.learning_rate``): cross-entropy of the action distribution to
    the expert's actions (actions the mask forbids are left out), plus ``value_coef`` times
    the critic's squared error to the expert's discounted returns under the training rewards
    (reward scale and shaping as PPO sees them), plus the auxiliary loss when the policy has
    an auxiliary head. Then records the settings and the result in ``model.rlagent_spec``
    (``"warm_start"``, ``"warm_started"``), so that ``model.learn`` keeps the decaying
    behaviour-cloning term (:class:`rlagent.agents.BehaviourCloning`) and never warm-starts
    the model again. A :class:`rlagent.agents.TextPPO` whose settings enable the warm start
    calls this itself in its first ``learn``.

    Args:
        model: A text agent from :func:`rlagent.make_ppo`.
        env: The training env: an id, an env or a factory; ``None``: the model's own env id
            with its ``env_kwargs`` (the training split, never validation or test).
        config: The settings (:class:`WarmStartConfig`, a mapping, or ``True`` for the
            defaults); ``None``: the model's (``make_ppo(..., warm_start=...)``).
        env_kwargs: Keyword arguments of an env given by id or factory; ``None`` with the
            model's own env id: the model's ``env_kwargs``.
        expert: A baseline name of the env, or a function of the raw env returning an agent
            with ``reset(seed)`` and ``act(observation)``; ``None``: ``config.expert``.
        val_env: A validation env on which to report agreement too (its demonstrations are
            only scored, never trained on); ``None`` with ``val_env_kwargs``: the training
            env's id with those kwargs.
        val_env_kwargs: Keyword arguments of the validation env.
        logger: An SB3 ``Logger`` for ``warm_start/*`` curves (one point per epoch).

    Returns:
        The :class:`WarmStartResult` (also in ``model.rlagent_spec["warm_started"]``).

    Raises:
        ExpertError: The env has no such expert, or the expert acted outside the action space.
        WarmStartError: No env is given and the model names none.
    """
    started = time.perf_counter()
    config = _config_of(model, config)
    spec = model.rlagent_spec = dict(getattr(model, "rlagent_spec", None) or {})
    if env is None:
        env = spec.get("env_id")
        if env is None:
            raise WarmStartError(
                "The model names no env id to play the expert in; pass the training env: "
                "warm_start(model, env)."
            )
        if env_kwargs is None:
            env_kwargs = spec.get("env_kwargs")
    chosen = config.expert if expert is None else expert
    seed = _seed_of(model)
    demonstrations = _collect(model, env, env_kwargs, chosen, config.episodes, seed)
    rng = np.random.default_rng(seed)
    policy = model.policy
    before = cloning_scores(policy, demonstrations, _SCORE_BATCH)
    _train(model, demonstrations, config, rng, logger)
    after = cloning_scores(policy, demonstrations, _SCORE_BATCH)
    result = {
        "expert": _expert_name(chosen, env, env_kwargs),
        "episodes": config.episodes,
        "transitions": len(demonstrations),
        "epochs": config.epochs,
        "seed": seed,
        "accuracy_before": before.accuracy,
        "accuracy": after.accuracy,
        "majority_accuracy": _majority(demonstrations),
        "policy_loss": after.policy_loss,
        "value_loss": after.value_loss,
        "masked_expert_actions": int((~demonstrations.allowed).sum()),
        "rebuildable": isinstance(env, str)
        and env == spec.get("env_id")
        and dict(env_kwargs or {}) == dict(spec.get("env_kwargs") or {})
        and chosen == config.expert,
    }
    if val_env is not None or val_env_kwargs is not None:
        source = val_env if val_env is not None else env
        val = _collect(
            model, source, val_env_kwargs, chosen, config.episodes, seed + DEMONSTRATION_SEED_OFFSET
        )
        scores = cloning_scores(policy, val, _SCORE_BATCH)
        result.update(
            val_episodes=config.episodes,
            val_accuracy=scores.accuracy,
            val_value_loss=scores.value_loss,
        )
    outcome = WarmStartResult(wall_time_s=round(time.perf_counter() - started, 2), **result)
    if logger is not None:
        for key in ("accuracy_before", "accuracy", "val_accuracy", "val_value_loss"):
            value = getattr(outcome, key)
            if value is not None:
                logger.record(f"warm_start/{key}", float(value))
        logger.dump(config.epochs)
    spec["warm_start"] = config.to_dict()
    spec["warm_started"] = outcome.to_dict()
    cloning = getattr(model, "behaviour_cloning", None)
    if cloning is not None:
        cloning.demonstrations = demonstrations
    return outcome
