"""Training configuration: a frozen dataclass, per-env YAML settings, and overrides.

The defaults are those of :class:`rlagent.agents.AgentConfig` (the agent) and
:class:`TrainConfig` (the run). Each bundled environment ships a hyperparameter file in
``rlagent/configs/`` (RL Baselines3 Zoo style). :func:`load_config` starts from it (or from the
defaults alone for a user's env), applies a user's ``--config FILE.yaml``, then explicit
overrides such as ``--timesteps``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from rlagent._yaml import read_yaml_mapping
from rlagent.agents.settings import (
    SCHEDULABLE,
    AgentConfig,
    AuxiliaryConfig,
    ConfigError,
    WarmStartConfig,
    merge_settings,
    resolve_schedules,
    translate_legacy_settings,
)
from rlagent.agents.settings import bundled_config_path as default_config_path

__all__ = [
    "AuxiliaryConfig",
    "ConfigError",
    "SCHEDULABLE",
    "TrainConfig",
    "WarmStartConfig",
    "check_config_names",
    "default_config_path",
    "load_config",
    "parse_kwargs",
    "resolve_schedules",
]


@dataclass(frozen=True, kw_only=True)
class TrainConfig(AgentConfig):
    """Everything that defines a training run: the agent's settings and the run's.

    The agent's settings are those of :class:`rlagent.agents.AgentConfig` (``encoder``,
    ``n_envs``, ``max_length``, ``ppo``, ``policy_kwargs``, ``reward_scale``, the
    ``auxiliary`` and ``warm_start`` groups...), with the same defaults; the run adds:

    Attributes:
        env_id: Registered Gymnasium id of the training environment.
        n_timesteps: Total environment steps to train for (rounded up to whole rollouts of
            ``n_steps * n_envs``).
        seed: Seed for PPO, the environments and evaluation.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        eval_env_kwargs: Keyword arguments of the evaluation environment, merged over
            ``env_kwargs``. It scores the evaluations during training, ``best_model/``,
            the final evaluation in ``metrics.json`` and the baselines, so it should be a
            validation env: the bundled customer-service config uses ``split: val``; measure
            the test split afterwards with ``rlagent evaluate``.
        eval_freq: Evaluate every this many environment steps (0 disables).
        eval_episodes: Episodes per evaluation.
        checkpoint_freq: Checkpoint every this many environment steps (0: only at the end
            and on interruption).
        keep_checkpoints: How many checkpoints to keep.
        average_checkpoints: When positive, the final ``model/`` holds the mean of the
            policy weights at the end and at this many checkpoints before it (tail averaging,
            :mod:`rlagent.training.averaging`); the checkpoints keep the last weights. Needs
            ``keep_checkpoints`` of at least ``average_checkpoints + 1``.
        baseline_episodes: Episodes per baseline in the final report (0 skips baselines).
        init_model: A model folder whose policy weights the new agent starts from (e.g. one
            learnt from logs by ``rlagent learn``; ``rlagent train --init``); the run's
            settings must build the same architecture for the same env and encoder
            (:func:`rlagent.agents.load_initial_weights`). PPO's optimizer and counters start
            fresh. ``None``: PPO's own initialisation.
    """

    GROUPS: ClassVar[tuple[str, ...]] = (*AgentConfig.GROUPS, "eval_env_kwargs")

    env_id: str
    n_timesteps: int = 100_000
    seed: int = 0
    device: str = "auto"
    eval_env_kwargs: dict[str, Any] | None = None
    eval_freq: int = 10_000
    eval_episodes: int = 50
    checkpoint_freq: int = 10_000
    keep_checkpoints: int = 3
    average_checkpoints: int = 0
    baseline_episodes: int = 200
    init_model: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = {
            "n_timesteps": self.n_timesteps >= 1,
            "eval_freq": self.eval_freq >= 0,
            "eval_episodes": self.eval_episodes >= 1,
            "checkpoint_freq": self.checkpoint_freq >= 0,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "average_checkpoints": self.average_checkpoints >= 0,
            "baseline_episodes": self.baseline_episodes >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{name} = {getattr(self, name)!r} is out of range")
        if self.auxiliary.bottleneck and not self.auxiliary.enabled:
            raise ConfigError(
                "auxiliary.bottleneck = true lets the actor read the auxiliary head's "
                f"predictions, but auxiliary.coef = {self.auxiliary.coef!r} trains no head; "
                "set auxiliary.coef > 0 (e.g. 1.0) or drop bottleneck"
            )
        if self.average_checkpoints >= self.keep_checkpoints:
            raise ConfigError(
                f"average_checkpoints = {self.average_checkpoints} averages the final weights "
                f"with {self.average_checkpoints} earlier checkpoints, but keep_checkpoints = "
                f"{self.keep_checkpoints} keeps only {self.keep_checkpoints - 1} besides the "
                f"final one; set keep_checkpoints: {self.average_checkpoints + 1} or more."
            )
        if self.init_model is not None and not (
            isinstance(self.init_model, str) and self.init_model
        ):
            raise ConfigError(
                f"init_model = {self.init_model!r}; expected the path of a model folder"
            )
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device = {self.device!r}; expected 'auto', 'cpu' or 'cuda'")

    @property
    def resolved_eval_env_kwargs(self) -> dict[str, Any]:
        """The evaluation env's kwargs: ``eval_env_kwargs`` merged over ``env_kwargs``."""
        return {**self.env_kwargs, **(self.eval_env_kwargs or {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """The configuration :meth:`to_dict` wrote; older layouts are translated.

        See :func:`rlagent.agents.settings.translate_legacy_settings`.

        Raises:
            ConfigError: An unknown setting, or a value out of range.
        """
        settings = translate_legacy_settings(data, source)
        return cls(**merge_settings({}, settings, source, _FIELDS, ()))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, what="Config file", error=ConfigError)


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _merge(base: dict[str, Any], update: Mapping[str, Any], source: str) -> dict[str, Any]:
    update = translate_legacy_settings(update, source)
    return merge_settings(base, update, source, _FIELDS, TrainConfig.GROUPS)


def load_config(
    env_id: str,
    *,
    config_file: str | Path | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> TrainConfig:
    """Build a :class:`TrainConfig` for ``env_id``.

    Order (later wins): the defaults (:class:`rlagent.agents.AgentConfig`'s and the run's),
    the bundled ``rlagent/configs/<Env>.yaml`` if any, ``config_file``, ``env_kwargs``
    (merged into the env's kwargs), then ``overrides`` whose value is not ``None``. Groups
    (``env_kwargs``, ``ppo``, ``policy_kwargs``, ``auxiliary``...) merge key by key.

    Args:
        env_id: Registered environment id.
        config_file: Optional user YAML with any :class:`TrainConfig` fields.
        env_kwargs: Extra environment keyword arguments.
        **overrides: Field values, e.g. ``n_timesteps=50_000``.

    Returns:
        The configuration.

    Raises:
        ConfigError: A file is missing or malformed, or a setting is unknown or out of range.
    """
    settings: dict[str, Any] = {"env_id": env_id}
    bundled = default_config_path(env_id)
    if bundled.is_file():
        settings = _merge(settings, _read_yaml(bundled), str(bundled))
    settings = merge_user_settings(
        settings, config_file=config_file, env_kwargs=env_kwargs, overrides=overrides
    )
    settings["env_id"] = env_id
    return TrainConfig(**settings)


def merge_user_settings(
    settings: Mapping[str, Any],
    *,
    config_file: str | Path | None,
    env_kwargs: Mapping[str, Any] | None,
    overrides: Mapping[str, Any],
) -> dict[str, Any]:
    """``settings`` with the user's on top: ``config_file``, ``env_kwargs``, then ``overrides``.

    Later wins; groups merge key by key; ``overrides`` whose value is ``None`` are skipped.
    :func:`load_config` applies them over the env's defaults,
    :func:`rlagent.training.resume_config` over a run's saved settings.

    Raises:
        ConfigError: A file is missing or malformed, or a setting is unknown.
    """
    settings = dict(settings)
    if config_file is not None:
        settings = _merge(settings, _read_yaml(Path(config_file)), str(config_file))
    if env_kwargs:
        settings = _merge(settings, {"env_kwargs": dict(env_kwargs)}, "--env-kwargs")
    return _merge(settings, {k: v for k, v in overrides.items() if v is not None}, "overrides")


def check_config_names(config: TrainConfig, *, encoder: bool = True) -> None:
    """Check what ``config`` names on this machine, so that a mistake fails before a run starts.

    Args:
        config: The configuration.
        encoder: Also check that ``config.encoder`` can be found.

    Raises:
        UnknownEnvError: ``config.env_id`` is not registered.
        EnvKwargsError: An argument of ``env_kwargs`` or ``eval_env_kwargs`` the env does not
            take, or a value of the wrong type (with "did you mean").
        EncoderNotFoundError: The encoder cannot be found on this machine.
        ExpertError: The warm start is on and the env has no expert of its name.
    """
    from rlagent.encoders.loading import resolve_encoder_path
    from rlagent.env_making import check_env_kwargs, find_env_spec

    spec = find_env_spec(config.env_id)
    check_env_kwargs(spec, config.env_kwargs)
    check_env_kwargs(spec, config.resolved_eval_env_kwargs)
    if encoder:
        resolve_encoder_path(config.encoder)
    if config.warm_start.enabled:
        from rlagent.agents.demonstrations import make_expert
        from rlagent.env_making import make_env

        env = make_env(config.env_id, config.env_kwargs)
        try:
            make_expert(env, config.warm_start.expert)
        finally:
            env.close()


def parse_kwargs(pairs: Sequence[str] | None) -> dict[str, Any]:
    """Parse ``["split=test", "noise=0.1"]`` into ``{"split": "test", "noise": 0.1}``.

    Values are read as YAML scalars, so numbers, booleans and lists parse naturally.

    Raises:
        ConfigError: An item has no ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"Expected KEY=VALUE, got {pair!r} (e.g. --env-kwargs split=test)")
        try:
            out[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key] = value
    return out
