"""The settings that define a text agent, and the one place their defaults live.

:class:`AgentConfig` holds what :func:`rlagent.make_ppo` builds an agent from (encoder, envs,
PPO hyperparameters, policy, training-time aids), :class:`AuxiliaryConfig` its auxiliary
head group and :class:`rlagent.agents.WarmStartConfig` its warm-start group;
:class:`rlagent.training.TrainConfig` extends it with the settings of a run.
Their field defaults, :data:`PPO_DEFAULTS` and :data:`DEFAULT_NET_ARCH` are the defaults;
each bundled env's ``rlagent/configs/<Env>.yaml`` overrides them for that env
(:meth:`AgentConfig.for_env`), so ``make_ppo(env_id)`` and ``rlagent train --env env_id``
build the same agent.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rlagent._yaml import read_yaml_mapping
from rlagent.agents._checks import ConfigError
from rlagent.agents._checks import check_known as _check_known
from rlagent.agents._checks import check_ranges as _check_ranges
from rlagent.agents._checks import is_integer as _integer
from rlagent.agents._checks import is_number as _number
from rlagent.agents.auxiliary import AuxiliaryLoss, AuxiliaryTargetsError, belief_noise_spec
from rlagent.agents.warm_starting import WarmStartConfig
from rlagent.encoders.dtypes import ENCODER_DTYPES, INT8_MODE_MESSAGE, LEGACY_DTYPES
from rlagent.encoders.extractor import DTYPES, ENCODER_MODES, POOLINGS, layer_indices
from rlagent.encoders.loading import DEFAULT_ENCODER

__all__ = [
    "DEFAULT_NET_ARCH",
    "PPO_DEFAULTS",
    "SCHEDULABLE",
    "TRAINABLE_ENCODER_LEARNING_RATE",
    "AgentConfig",
    "AuxiliaryConfig",
    "ConfigError",
    "WarmStartConfig",
    "bundled_config_path",
    "merge_settings",
    "resolve_schedules",
    "translate_legacy_settings",
]

#: PPO hyperparameters an agent uses unless its config's ``ppo`` overrides them. Rollouts of
#: ``n_steps`` per env (512 frames with the default 4 envs), small minibatches and a few epochs
#: suit short text episodes; the entropy bonus keeps early exploration over discrete replies
#: alive.
PPO_DEFAULTS: Mapping[str, Any] = {
    "learning_rate": 3e-4,
    "n_steps": 128,
    "batch_size": 64,
    "n_epochs": 4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
}
#: Learning rate used instead when the encoder itself trains (``lora`` or ``full``).
TRAINABLE_ENCODER_LEARNING_RATE: float = 1e-4
#: Policy/value heads on top of the text features.
DEFAULT_NET_ARCH: Mapping[str, list[int]] = {"pi": [128, 64], "vf": [128, 64]}
#: PPO arguments that accept a ``"lin_<value>"`` schedule in a config.
SCHEDULABLE: tuple[str, ...] = ("learning_rate", "clip_range")

_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
#: Flat settings of old configs, now fields of the ``auxiliary`` group.
_LEGACY_AUXILIARY = {
    "auxiliary_coef": "coef",
    "auxiliary_epochs": "epochs",
    "auxiliary_warmup_epochs": "warmup_epochs",
    "auxiliary_learning_rate": "learning_rate",
}
#: Policy keyword arguments of old configs, now fields of the ``auxiliary`` group.
_LEGACY_POLICY_AUXILIARY = {"auxiliary_bottleneck": "bottleneck", "belief_noise": "belief_noise"}


@dataclass(frozen=True)
class AuxiliaryConfig:
    """The auxiliary head: the actor learns to predict the env's hidden state it never reads.

    With ``coef > 0`` the env carries its hidden ``privileged_features()`` as the
    ``"privileged"`` entry and the policy gets an auxiliary head that predicts them from the
    rest of the observation, trained by supervised steps after each rollout
    (:class:`rlagent.agents.AuxiliaryLoss`, attached to ``model.learn`` by
    :func:`rlagent.make_ppo`). YAML: the ``auxiliary:`` group of a training config.

    Attributes:
        coef: Weight of the auxiliary loss; 0 turns the head off.
        epochs: Passes of the supervised steps over each rollout.
        warmup_epochs: Passes over the first rollout of a new run (when more than ``epochs``),
            before PPO's first update.
        learning_rate: Learning rate of a separate Adam optimizer for the auxiliary steps
            (``None``: the policy's optimizer, at PPO's learning rate).
        bottleneck: The actor reads the text only through the head's predicted probabilities
            (and the numeric entries): :class:`rlagent.agents.AuxiliaryBottleneck`.
        belief_noise: Standard deviation, in logits, of the perturbation of the predictions a
            bottleneck actor reads in training (never when predicting): one for all targets or
            a list with one per target; needs ``bottleneck``.
    """

    coef: float = 0.0
    epochs: int = 1
    warmup_epochs: int = 0
    learning_rate: float | None = None
    bottleneck: bool = False
    belief_noise: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        _check_ranges(
            "auxiliary.",
            self,
            {
                "coef": (_number(self.coef) and self.coef >= 0, "a number >= 0 (0: off)"),
                "epochs": (_integer(self.epochs) and self.epochs >= 1, "an integer >= 1"),
                "warmup_epochs": (
                    _integer(self.warmup_epochs) and self.warmup_epochs >= 0,
                    "an integer >= 0",
                ),
                "learning_rate": (
                    self.learning_rate is None
                    or (_number(self.learning_rate) and self.learning_rate > 0),
                    "a number > 0, or null for the policy's optimizer",
                ),
                "bottleneck": (isinstance(self.bottleneck, bool), "true or false"),
            },
        )
        try:
            noise = belief_noise_spec(self.belief_noise)
        except AuxiliaryTargetsError:
            raise ConfigError(
                f"auxiliary.belief_noise = {self.belief_noise!r} is out of range; expected a "
                "standard deviation >= 0 in logits (0: off), or a list of them with one per "
                "auxiliary target"
            ) from None
        object.__setattr__(self, "belief_noise", noise)
        if self.noisy and not self.bottleneck:
            raise ConfigError(
                f"auxiliary.belief_noise = {self.belief_noise!r} perturbs the predictions a "
                "bottleneck actor reads; set auxiliary.bottleneck: true too (or drop "
                "belief_noise)"
            )

    @property
    def enabled(self) -> bool:
        """Whether the auxiliary head is trained (``coef > 0``)."""
        return self.coef > 0

    @property
    def noisy(self) -> bool:
        """Whether ``belief_noise`` perturbs anything."""
        noise = self.belief_noise
        return any(v > 0 for v in noise) if isinstance(noise, tuple) else noise > 0

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-ready)."""
        out = dataclasses.asdict(self)
        if isinstance(self.belief_noise, tuple):
            out["belief_noise"] = list(self.belief_noise)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "auxiliary") -> AuxiliaryConfig:
        """The group from a mapping of its fields.

        Raises:
            ConfigError: ``data`` is not a mapping, or names an unknown field.
        """
        if isinstance(data, AuxiliaryConfig):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{source} must be a mapping of auxiliary settings (coef, epochs, ...), got "
                f"{data!r}"
            )
        _check_known(data, {f.name for f in dataclasses.fields(cls)}, f"{source}:", "auxiliary")
        return cls(**data)

    def callback(self) -> AuxiliaryLoss | None:
        """The :class:`rlagent.agents.AuxiliaryLoss` that trains the head (``None`` when off)."""
        if not self.enabled:
            return None
        return AuxiliaryLoss(
            self.coef,
            epochs=self.epochs,
            warmup_epochs=self.warmup_epochs,
            learning_rate=self.learning_rate,
        )


@dataclass(frozen=True)
class AgentConfig:
    """Everything that defines a text PPO agent (what :func:`rlagent.make_ppo` builds).

    Attributes:
        encoder: ``"default"``, ``"tiny-random"``, a local model folder or a hub id.
        encoder_mode: ``"frozen"``, ``"lora"`` or ``"full"``.
        n_envs: Number of parallel training environments.
        max_length: Tokens per text segment.
        pooling: How the encoder's token states become one vector per segment: ``"mean"`` or
            ``"cls"`` (see :class:`rlagent.encoders.TextFeaturesExtractor`).
        encoder_layers: Hidden states to pool and concatenate per segment, as indices into
            the encoder's ``hidden_states`` (0: embeddings, -1: last layer), e.g. ``[-1, 3]``;
            ``None`` pools the last layer only.
        encoder_dtype: What the encoder runs in: ``"auto"`` (bf16 where the hardware has
            native bfloat16, fp32 elsewhere), ``"fp32"``, ``"bf16"`` or ``"int8"`` (frozen
            mode only: a dynamically quantised copy, see docs/encoders.md "Encoder dtypes").
            Saved with the model, so a loaded model runs in the same.
        dtype: The older name of ``encoder_dtype`` (``"auto"``, ``"float32"`` or
            ``"bfloat16"``); when given it sets ``encoder_dtype`` and reads back as ``None``.
        env_kwargs: Keyword arguments of the training environment.
        ppo: Keyword arguments for Stable-Baselines3's PPO over :data:`PPO_DEFAULTS`
            (``n_steps``, ``batch_size``...). ``learning_rate`` and ``clip_range`` may be
            ``"lin_<value>"`` (RL Baselines3 Zoo's notation): a linear decay from ``value`` at
            the start to 0 at the end of training.
        policy_kwargs: Policy keyword arguments (``net_arch``, ``candidates``...; see
            :class:`rlagent.agents.TextActorCriticPolicy`).
        reward_scale: Factor applied to the rewards PPO learns from (value targets of order 1
            train best: about 1 / typical return); reported returns stay unscaled.
        privileged_critic: Let the critic (only) read the env's hidden
            ``privileged_features()`` (see :func:`rlagent.make_ppo`).
        reward_shaping: Learn from rewards shaped by the env's hidden ``shaping_potential()``
            (see :func:`rlagent.make_ppo`); evaluation and reports use the env's own rewards.
        expected_rewards: Learn from each step's expected reward given the hidden state (the
            env's ``expected_reward()``) instead of the sampled one.
        action_masks: Give the actions the env's ``action_masks()`` forbids zero probability
            (the mask is also an observation entry; see :func:`rlagent.make_ppo`).
        auxiliary: The auxiliary head (:class:`AuxiliaryConfig`; a mapping is converted).
        warm_start: The warm start from an expert's demonstrations
            (:class:`rlagent.agents.WarmStartConfig`; a mapping is converted); off by default.
    """

    encoder: str = DEFAULT_ENCODER
    encoder_mode: str = "frozen"
    n_envs: int = 4
    max_length: int = 64
    pooling: str = "mean"
    encoder_layers: list[int] | None = None
    encoder_dtype: str = "auto"
    dtype: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    ppo: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    reward_scale: float = 1.0
    privileged_critic: bool = False
    reward_shaping: bool = False
    expected_rewards: bool = False
    action_masks: bool = False
    auxiliary: AuxiliaryConfig = field(default_factory=AuxiliaryConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)

    #: Fields holding mappings, merged key by key by :func:`merge_settings`.
    GROUPS: ClassVar[tuple[str, ...]] = (
        "env_kwargs",
        "ppo",
        "policy_kwargs",
        "auxiliary",
        "warm_start",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "auxiliary", AuxiliaryConfig.from_dict(self.auxiliary))
        object.__setattr__(self, "warm_start", WarmStartConfig.from_dict(self.warm_start))
        _check_ranges(
            "",
            self,
            {
                "n_envs": (_integer(self.n_envs) and self.n_envs >= 1, "an integer >= 1"),
                "max_length": (
                    _integer(self.max_length) and self.max_length >= 2,
                    "an integer >= 2 (tokens per segment, [CLS] and [SEP] included)",
                ),
                "reward_scale": (
                    _number(self.reward_scale)
                    and math.isfinite(self.reward_scale)
                    and self.reward_scale > 0,
                    "a finite number > 0",
                ),
            },
        )
        for name, choices in (
            ("encoder_mode", ENCODER_MODES),
            ("pooling", POOLINGS),
            ("dtype", (None, *DTYPES)),
            ("encoder_dtype", ENCODER_DTYPES),
        ):
            value = getattr(self, name)
            if value not in choices:
                names = ", ".join(repr(c) for c in choices if c is not None)
                raise ConfigError(f"{name} = {value!r}; expected one of {names}")
        if self.dtype is not None:
            older = LEGACY_DTYPES[self.dtype]
            if self.encoder_dtype == "auto":
                object.__setattr__(self, "encoder_dtype", older)
            elif older not in ("auto", self.encoder_dtype):
                raise ConfigError(
                    f"dtype = {self.dtype!r} and encoder_dtype = {self.encoder_dtype!r} disagree; "
                    "dtype is the older name of encoder_dtype: keep encoder_dtype only"
                )
            object.__setattr__(self, "dtype", None)
        if self.encoder_dtype == "int8" and self.encoder_mode != "frozen":
            raise ConfigError(
                f"encoder_dtype = 'int8' with encoder_mode = {self.encoder_mode!r}: "
                f"{INT8_MODE_MESSAGE}"
            )
        try:
            layer_indices(self.encoder_layers)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"encoder_layers = {self.encoder_layers!r}; expected a non-empty list of "
                f"hidden-state indices such as [-1, 3], or null for the last layer only ({err})"
            ) from None
        for name in ("env_kwargs", "ppo", "policy_kwargs"):
            if not isinstance(getattr(self, name), Mapping):
                raise ConfigError(f"{name} must be a mapping, got {getattr(self, name)!r}")
        moved = sorted(set(self.policy_kwargs) & set(_LEGACY_POLICY_AUXILIARY))
        if moved:
            raise ConfigError(
                f"policy_kwargs.{moved[0]} is a setting of the auxiliary group now; write "
                f"auxiliary: {{{_LEGACY_POLICY_AUXILIARY[moved[0]]}: ...}} instead"
            )
        resolve_schedules(self.ppo)  # raises ConfigError for a malformed schedule

    @property
    def auxiliary_targets(self) -> bool:
        """Whether the actor learns to predict the privileged features (``auxiliary.coef > 0``)."""
        return self.auxiliary.enabled

    @classmethod
    def for_env(cls, env_id: str) -> AgentConfig:
        """The agent settings of ``env_id``: the defaults, with its bundled YAML's over them.

        Settings of a training run in that file (``n_timesteps``, ``eval_freq``...) are left
        to :func:`rlagent.training.load_config`.
        """
        path = bundled_config_path(env_id)
        if not path.is_file():
            return cls()
        data = translate_legacy_settings(
            read_yaml_mapping(path, what="Config file", error=ConfigError), str(path)
        )
        known = {f.name for f in dataclasses.fields(cls)}
        return cls().merged({k: v for k, v in data.items() if k in known}, str(path))

    def merged(self, update: Mapping[str, Any], source: str = "overrides") -> AgentConfig:
        """A copy with ``update`` applied: groups merged key by key, ``None`` values skipped.

        Raises:
            ConfigError: ``update`` names an unknown setting, or a value is out of range.
        """
        update = translate_legacy_settings(
            {k: v for k, v in update.items() if v is not None}, source
        )
        names = {f.name for f in dataclasses.fields(self)}
        settings = merge_settings(self._settings(), update, source, names, self.GROUPS)
        return type(self)(**settings)

    def agent_config(self) -> AgentConfig:
        """Only the agent settings (a plain :class:`AgentConfig`, also from a subclass)."""
        names = {f.name for f in dataclasses.fields(AgentConfig)}
        return AgentConfig(**{k: v for k, v in self._settings().items() if k in names})

    def ppo_kwargs(self) -> dict[str, Any]:
        """The PPO keyword arguments: :data:`PPO_DEFAULTS` under ``ppo``, schedules resolved.

        The learning rate defaults to :data:`TRAINABLE_ENCODER_LEARNING_RATE` when the encoder
        trains.
        """
        kwargs = dict(PPO_DEFAULTS)
        if self.encoder_mode != "frozen":
            kwargs["learning_rate"] = TRAINABLE_ENCODER_LEARNING_RATE
        kwargs.update(resolve_schedules(self.ppo))
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-ready), the typed groups as nested mappings."""
        out = self._settings()
        out.pop("dtype", None)  # always None: read into encoder_dtype
        out["auxiliary"] = self.auxiliary.to_dict()
        out["warm_start"] = self.warm_start.to_dict()
        return out

    def _settings(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in out.items():
            if isinstance(value, dict):
                out[name] = dict(value)
        return out


def bundled_config_path(env_id: str) -> Path:
    """Path of the bundled YAML for ``env_id``; it may not exist for a user's env.

    ``rlagent/CustomerService-v0`` maps to ``rlagent/configs/CustomerService-v0.yaml``.
    """
    return _CONFIG_DIR / f"{env_id.split('/')[-1]}.yaml"


def translate_legacy_settings(settings: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``settings`` with the auxiliary settings of older configs moved into ``auxiliary``.

    Older configs had flat ``auxiliary_coef``, ``auxiliary_epochs``,
    ``auxiliary_warmup_epochs`` and ``auxiliary_learning_rate`` settings, and
    ``auxiliary_bottleneck`` and ``belief_noise`` in ``policy_kwargs``. They are read (with a
    ``FutureWarning`` naming the new setting) so that older files and run directories still
    work.

    Raises:
        ConfigError: An old setting and the same setting of the ``auxiliary`` group are both
            given.
    """
    out = dict(settings)
    group: dict[str, Any] = {}
    old_names = []
    for old, new in _LEGACY_AUXILIARY.items():
        if old in out:
            group[new] = out.pop(old)
            old_names.append(old)
    policy_kwargs = out.get("policy_kwargs")
    if isinstance(policy_kwargs, Mapping) and set(policy_kwargs) & set(_LEGACY_POLICY_AUXILIARY):
        policy_kwargs = dict(policy_kwargs)
        for old, new in _LEGACY_POLICY_AUXILIARY.items():
            if old in policy_kwargs:
                group[new] = policy_kwargs.pop(old)
                old_names.append(f"policy_kwargs.{old}")
        out["policy_kwargs"] = policy_kwargs
    if not group:
        return out
    current = out.get("auxiliary")
    if isinstance(current, AuxiliaryConfig):
        current = current.to_dict()
    current = dict(current or {})
    both = sorted(set(group) & set(current))
    if both:
        raise ConfigError(
            f"{source}: auxiliary.{both[0]} is given twice, in the auxiliary group and as an "
            "older setting; keep the auxiliary group's"
        )
    warnings.warn(
        f"{source}: {', '.join(old_names)} are settings of the auxiliary group now; write "
        f"auxiliary: {{{', '.join(f'{k}: ...' for k in group)}}} instead",
        FutureWarning,
        stacklevel=3,
    )
    out["auxiliary"] = {**current, **group}
    return out


def merge_settings(
    base: Mapping[str, Any],
    update: Mapping[str, Any],
    source: str,
    known: Iterable[str],
    groups: Iterable[str],
) -> dict[str, Any]:
    """``base`` with ``update`` applied: ``groups`` (mappings) merged key by key.

    Args:
        base: Current settings.
        update: Settings that win.
        source: Where ``update`` comes from, for messages (a file name, ``"overrides"``).
        known: The setting names.
        groups: The settings holding mappings.

    Raises:
        ConfigError: ``update`` names an unknown setting, or a group is not a mapping.
    """
    known = set(known)
    unknown = sorted(set(update) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown setting(s) {', '.join(unknown)}; known settings are "
            f"{', '.join(sorted(known))}."
        )
    groups = set(groups)
    merged = dict(base)
    for key, value in update.items():
        if key in groups and value is not None:
            if isinstance(value, _TYPED_GROUPS):
                value = value.to_dict()
            elif key == "warm_start" and isinstance(value, bool):
                value = {"enabled": value}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
            current = merged.get(key)
            if isinstance(current, _TYPED_GROUPS):
                current = current.to_dict()
            merged[key] = {**(current or {}), **value}
        else:
            merged[key] = value
    return merged


#: The settings groups that are dataclasses of their own.
_TYPED_GROUPS = (AuxiliaryConfig, WarmStartConfig)


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
