"""Training configuration: a frozen dataclass, per-env YAML defaults, and overrides.

Each bundled environment ships a hyperparameter file in ``rlagent/configs/`` (RL Baselines3
Zoo style). :func:`load_config` starts from it (or from generic defaults for a user's env),
applies a user's ``--config FILE.yaml``, then explicit overrides such as ``--timesteps``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlagent._yaml import read_yaml_mapping

__all__ = [
    "ConfigError",
    "SCHEDULABLE",
    "TrainConfig",
    "default_config_path",
    "load_config",
    "parse_kwargs",
    "resolve_schedules",
]

#: PPO arguments that accept a ``"lin_<value>"`` schedule in a config.
SCHEDULABLE: tuple[str, ...] = ("learning_rate", "clip_range")

_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """Raised for a configuration file or override that cannot be used."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        env_id: Registered Gymnasium id of the training environment.
        n_timesteps: Total environment steps to train for (rounded up to whole rollouts of
            ``n_steps * n_envs``).
        n_envs: Number of parallel training environments.
        seed: Seed for PPO, the environments and evaluation.
        encoder: ``"default"``, ``"tiny-random"``, a local model folder or a hub id.
        encoder_mode: ``"frozen"``, ``"lora"`` or ``"full"``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        max_length: Tokens per text segment.
        pooling: How the encoder's token states become one vector per segment: ``"mean"`` or
            ``"cls"`` (see :class:`rlagent.encoders.TextFeaturesExtractor`).
        encoder_layers: Hidden states to pool and concatenate per segment, as indices into
            the encoder's ``hidden_states`` (0: embeddings, -1: last layer), e.g. ``[-1, 3]``;
            ``None`` pools the last layer only.
        env_kwargs: Keyword arguments of the training environment.
        eval_env_kwargs: Keyword arguments of the evaluation environment, merged over
            ``env_kwargs``. It scores the evaluations during training, ``best_model/``,
            the final evaluation in ``metrics.json`` and the baselines, so it should be a
            validation env: the bundled customer-service config uses ``split: val``; measure
            the test split afterwards with ``rlagent evaluate``.
        ppo: Keyword arguments for Stable-Baselines3's PPO (``n_steps``, ``batch_size``...).
            ``learning_rate`` and ``clip_range`` may be ``"lin_<value>"`` (RL Baselines3 Zoo's
            notation): a linear decay from ``value`` at the start to 0 at ``n_timesteps``.
        policy_kwargs: Policy keyword arguments (``net_arch``, ``candidates``...).
        reward_scale: Factor applied to the rewards PPO learns from (value targets of order 1
            train best: about 1 / typical return); reported returns stay unscaled.
        privileged_critic: Let the critic (only) read the env's hidden
            ``privileged_features()`` (see :func:`rlagent.make_ppo`).
        reward_shaping: Learn from rewards shaped by the env's hidden ``shaping_potential()``
            (see :func:`rlagent.make_ppo`); evaluation and reports use the env's own rewards.
        expected_rewards: Learn from each step's expected reward given the hidden state (the
            env's ``expected_reward()``) instead of the sampled one.
        auxiliary_coef: When positive, the actor also learns to predict the env's hidden
            ``privileged_features()`` from the observation, with this weight (an auxiliary
            head trained by :class:`rlagent.agents.AuxiliaryLoss` after each rollout).
        auxiliary_epochs: Passes of those supervised steps over each rollout.
        auxiliary_warmup_epochs: Passes over the first rollout of a new run (when more than
            ``auxiliary_epochs``), before PPO's first update.
        auxiliary_learning_rate: Learning rate of a separate Adam optimizer for the auxiliary
            steps (``None``: the policy's optimizer, at PPO's learning rate).
        action_masks: Give the actions the env's ``action_masks()`` forbids zero probability
            (the mask is also an observation entry; see :func:`rlagent.make_ppo`).
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
    """

    env_id: str
    n_timesteps: int = 100_000
    n_envs: int = 4
    seed: int = 0
    encoder: str = "default"
    encoder_mode: str = "frozen"
    device: str = "auto"
    max_length: int = 48
    pooling: str = "mean"
    encoder_layers: list[int] | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_env_kwargs: dict[str, Any] | None = None
    ppo: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    reward_scale: float = 1.0
    privileged_critic: bool = False
    reward_shaping: bool = False
    expected_rewards: bool = False
    auxiliary_coef: float = 0.0
    auxiliary_epochs: int = 1
    auxiliary_warmup_epochs: int = 0
    auxiliary_learning_rate: float | None = None
    action_masks: bool = False
    eval_freq: int = 10_000
    eval_episodes: int = 50
    checkpoint_freq: int = 10_000
    keep_checkpoints: int = 3
    average_checkpoints: int = 0
    baseline_episodes: int = 200

    def __post_init__(self) -> None:
        checks = {
            "n_timesteps": self.n_timesteps >= 1,
            "n_envs": self.n_envs >= 1,
            "max_length": self.max_length >= 2,
            "eval_freq": self.eval_freq >= 0,
            "eval_episodes": self.eval_episodes >= 1,
            "checkpoint_freq": self.checkpoint_freq >= 0,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "average_checkpoints": self.average_checkpoints >= 0,
            "baseline_episodes": self.baseline_episodes >= 0,
            "reward_scale": self.reward_scale > 0,
            "auxiliary_coef": self.auxiliary_coef >= 0,
            "auxiliary_epochs": self.auxiliary_epochs >= 1,
            "auxiliary_warmup_epochs": self.auxiliary_warmup_epochs >= 0,
            "auxiliary_learning_rate": self.auxiliary_learning_rate is None
            or self.auxiliary_learning_rate > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{name} = {getattr(self, name)!r} is out of range")
        if self.encoder_mode not in ("frozen", "lora", "full"):
            raise ConfigError(
                f"encoder_mode = {self.encoder_mode!r}; expected 'frozen', 'lora' or 'full'"
            )
        from rlagent.encoders.extractor import POOLINGS, layer_indices

        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"pooling = {self.pooling!r}; expected one of {', '.join(map(repr, POOLINGS))}"
            )
        try:
            layer_indices(self.encoder_layers)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"encoder_layers = {self.encoder_layers!r}; expected a non-empty list of "
                f"hidden-state indices such as [-1, 3], or null for the last layer only ({err})"
            ) from None
        if self.average_checkpoints >= self.keep_checkpoints:
            raise ConfigError(
                f"average_checkpoints = {self.average_checkpoints} averages the final weights "
                f"with {self.average_checkpoints} earlier checkpoints, but keep_checkpoints = "
                f"{self.keep_checkpoints} keeps only {self.keep_checkpoints - 1} besides the "
                f"final one; set keep_checkpoints: {self.average_checkpoints + 1} or more."
            )
        resolve_schedules(self.ppo)  # raises ConfigError for a malformed schedule
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device = {self.device!r}; expected 'auto', 'cpu' or 'cuda'")

    @property
    def auxiliary_targets(self) -> bool:
        """Whether the actor learns to predict the privileged features (``auxiliary_coef > 0``)."""
        return self.auxiliary_coef > 0

    @property
    def resolved_eval_env_kwargs(self) -> dict[str, Any]:
        """The evaluation env's kwargs: ``eval_env_kwargs`` merged over ``env_kwargs``."""
        return {**self.env_kwargs, **(self.eval_env_kwargs or {})}

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def resolve_schedules(ppo: Mapping[str, Any]) -> dict[str, Any]:
    """PPO keyword arguments with ``"lin_<value>"`` strings turned into linear schedules.

    Args:
        ppo: The config's ``ppo`` mapping.

    Returns:
        A copy in which ``learning_rate`` and ``clip_range`` given as ``"lin_<value>"`` are
        Stable-Baselines3 ``LinearSchedule(value, 0, 1)`` objects (the value decays linearly to
        0 over the run); everything else is unchanged.

    Raises:
        ConfigError: For a string that is not ``"lin_"`` and a positive number, or a schedule
            on an argument that takes none.
    """
    from stable_baselines3.common.utils import LinearSchedule

    out = dict(ppo)
    for key, value in ppo.items():
        if not isinstance(value, str):
            continue
        if key not in SCHEDULABLE:
            if value.startswith("lin_"):
                raise ConfigError(
                    f"ppo.{key} = {value!r}: only {', '.join(SCHEDULABLE)} take a 'lin_' schedule"
                )
            continue
        start = None
        if value.startswith("lin_"):
            try:
                start = float(value[len("lin_") :])
            except ValueError:
                start = None
        if start is None or not start > 0:
            raise ConfigError(
                f"ppo.{key} = {value!r}; expected a number or 'lin_<value>' with a positive "
                "value, e.g. 'lin_0.0003' (a linear decay to 0 over the run)"
            )
        out[key] = LinearSchedule(start, 0.0, 1.0)
    return out


def default_config_path(env_id: str) -> Path:
    """Path of the bundled YAML for ``env_id``; it may not exist for a user's env.

    ``rlagent/CustomerService-v0`` maps to ``rlagent/configs/CustomerService-v0.yaml``.
    """
    return _CONFIG_DIR / f"{env_id.split('/')[-1]}.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, what="Config file", error=ConfigError)


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _merge(base: dict[str, Any], update: Mapping[str, Any], source: str) -> dict[str, Any]:
    unknown = sorted(set(update) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown setting(s) {', '.join(unknown)}; known settings are "
            f"{', '.join(sorted(_FIELDS))}."
        )
    merged = dict(base)
    for key, value in update.items():
        if key in ("env_kwargs", "eval_env_kwargs", "ppo", "policy_kwargs") and value is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
            merged[key] = {**(merged.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def load_config(
    env_id: str,
    *,
    config_file: str | Path | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> TrainConfig:
    """Build a :class:`TrainConfig` for ``env_id``.

    Order (later wins): dataclass defaults, the bundled ``rlagent/configs/<Env>.yaml`` if
    any, ``config_file``, ``env_kwargs`` (merged into the env's kwargs), then ``overrides``
    whose value is not ``None``.

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
    if config_file is not None:
        settings = _merge(settings, _read_yaml(Path(config_file)), str(config_file))
    if env_kwargs:
        settings = _merge(settings, {"env_kwargs": dict(env_kwargs)}, "--env-kwargs")
    settings = _merge(settings, {k: v for k, v in overrides.items() if v is not None}, "overrides")
    settings["env_id"] = env_id
    return TrainConfig(**settings)


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
