"""The observation pipeline: how an env's raw observation becomes a model's input.

One frozen, JSON-serialisable :class:`ObservationPipeline` describes it (the tokenizer and
``max_length``, the hidden ``"privileged"`` entry and the ``"action_mask"`` entry the env adds,
and which entries the policy reads in a special way), and one function builds it:
:func:`wrap_observations` turns a raw env into the env a model reads, and
:func:`observation_converter` turns single raw observations into model inputs (what
evaluation and planning use, and what a service uses for a live transcript). Training adds
:func:`wrap_for_training` (episode statistics and the rewards PPO learns from) on top;
:func:`make_vec_env` assembles both into a ``VecEnv``.

A model built by :func:`rlagent.make_ppo` saves its pipeline in ``model.rlagent_spec``;
:func:`pipeline_of` reads it back, so training, resume, evaluation and planning all build the
same observations from the same description.
"""

from __future__ import annotations

import copy
import math
import operator
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rlagent.encoders.loading import DEFAULT_ENCODER
from rlagent.wrappers import (
    ACTION_MASK_KEY,
    PRIVILEGED_KEY,
    ActionMaskObservation,
    ExpectedReward,
    PotentialShaping,
    PrivilegedObservation,
    TokenizeText,
)

__all__ = [
    "ACTION_MASK_KEY",
    "PRIVILEGED_KEY",
    "NotATextModelError",
    "ObservationPipeline",
    "PipelineError",
    "is_tokenized",
    "make_vec_env",
    "observation_converter",
    "pipeline_of",
    "wrap_for_training",
    "wrap_observations",
]

_IDS = "_input_ids"


class PipelineError(ValueError):
    """An observation pipeline description that cannot be used, or cannot be applied to an env."""


class NotATextModelError(ValueError):
    """A model has no text features extractor, so there is no text pipeline to rebuild."""


@dataclass(frozen=True)
class ObservationPipeline:
    """How a raw observation of an env becomes the input of a text model.

    The env's observation gets the ``"privileged"`` entry (the env's hidden
    ``privileged_features()``, :class:`rlagent.wrappers.PrivilegedObservation`) when
    ``privileged``, then the ``"action_mask"`` entry (its ``action_masks()``,
    :class:`rlagent.wrappers.ActionMaskObservation`) when ``action_mask``; then every text
    entry is tokenized with ``encoder``'s tokenizer into ``max_length`` tokens per segment
    (:class:`rlagent.wrappers.TokenizeText`). The remaining fields say how the policy reads
    those entries, for whoever feeds it outside training (a planner, a service).

    Attributes:
        encoder: Encoder name or folder whose tokenizer to use (``"default"``,
            ``"tiny-random"``, a path...).
        max_length: Tokens per text segment, ``[CLS]`` and ``[SEP]`` included.
        privileged: The observation carries the ``"privileged"`` entry (hidden state: a
            training-time aid that the actor never reads).
        action_mask: The observation carries the ``"action_mask"`` entry.
        critic_only: Numeric entries that only the critic reads (e.g. ``("privileged",)``);
            actions never depend on them.
        auxiliary_targets: The numeric entry the policy's auxiliary head predicts (neither
            the actor nor, unless also in ``critic_only``, the critic reads it), or ``None``.
        candidates: The text entry holding one segment per candidate that the action head
            scores, or ``None`` for a plain action head.

    Example:
        >>> pipeline = ObservationPipeline("tiny-random", max_length=16, action_mask=True)
        >>> ObservationPipeline.from_dict(pipeline.to_dict()) == pipeline
        True
    """

    #: Version of the ``to_dict`` layout, saved with it.
    FORMAT_VERSION: ClassVar[int] = 1

    encoder: str = DEFAULT_ENCODER
    max_length: int = 64
    privileged: bool = False
    action_mask: bool = False
    critic_only: tuple[str, ...] = ()
    auxiliary_targets: str | None = None
    candidates: str | None = None

    def __post_init__(self) -> None:
        encoder = self.encoder
        if isinstance(encoder, os.PathLike):
            encoder = os.fspath(encoder)
        if not isinstance(encoder, str) or not encoder:
            raise PipelineError(
                f"ObservationPipeline.encoder = {self.encoder!r}; expected an encoder name or "
                "folder path such as 'default' or 'tiny-random'."
            )
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int | np.integer):
            raise PipelineError(
                f"ObservationPipeline.max_length = {self.max_length!r}; expected an integer "
                "number of tokens per segment, e.g. 48."
            )
        if int(self.max_length) < 2:
            raise PipelineError(
                f"ObservationPipeline.max_length = {self.max_length!r}; a segment needs at "
                "least 2 tokens ([CLS] and [SEP]): use 2 or more."
            )
        if isinstance(self.critic_only, str):
            raise PipelineError(
                f"ObservationPipeline.critic_only = {self.critic_only!r}; expected a list of "
                f"entry names, e.g. [{self.critic_only!r}]."
            )
        object.__setattr__(self, "encoder", encoder)
        object.__setattr__(self, "max_length", int(self.max_length))
        object.__setattr__(self, "privileged", bool(self.privileged))
        object.__setattr__(self, "action_mask", bool(self.action_mask))
        object.__setattr__(self, "critic_only", tuple(str(key) for key in self.critic_only))
        for name in ("auxiliary_targets", "candidates"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise PipelineError(
                    f"ObservationPipeline.{name} = {value!r}; expected an entry name or None."
                )

    @property
    def critic_reads_privileged(self) -> bool:
        """Whether the critic reads the ``"privileged"`` entry (so its values need it)."""
        return self.privileged and PRIVILEGED_KEY in self.critic_only

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-ready dict (lists, strings, numbers, booleans), with its format version."""
        out: dict[str, Any] = {"version": self.FORMAT_VERSION}
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObservationPipeline:
        """The pipeline that :meth:`to_dict` wrote.

        Raises:
            PipelineError: For a newer format version or an unknown field.
        """
        if not isinstance(data, Mapping):
            raise PipelineError(
                f"An observation pipeline is a mapping of its fields, got {type(data).__name__}."
            )
        settings = dict(data)
        version = settings.pop("version", cls.FORMAT_VERSION)
        if not isinstance(version, int) or version > cls.FORMAT_VERSION:
            raise PipelineError(
                f"Observation pipeline format version {version!r} is newer than this rlagent "
                f"reads ({cls.FORMAT_VERSION}); upgrade rlagent to load this model."
            )
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise PipelineError(
                f"Unknown observation pipeline field(s) {', '.join(unknown)}; known fields are "
                f"{', '.join(sorted(known))}."
            )
        return cls(**settings)


def is_tokenized(space: spaces.Space) -> bool:
    """Whether ``space`` already holds token ids (a Dict with ``*_input_ids`` entries)."""
    return isinstance(space, spaces.Dict) and any(key.endswith(_IDS) for key in space.spaces)


def wrap_observations(env: gym.Env, pipeline: ObservationPipeline) -> gym.Env:
    """The env whose observations are the model's inputs: the one place that wires them.

    Args:
        env: A raw text env. An env that is already tokenized (for instance one built by
            :func:`make_vec_env`) is returned unchanged, provided it carries the entries the
            pipeline adds.
        pipeline: The pipeline to apply.

    Returns:
        ``TokenizeText(env)``, with ``PrivilegedObservation`` and then
        ``ActionMaskObservation`` inside it when the pipeline carries those entries.

    Raises:
        PipelineError: ``env`` is tokenized but lacks an entry the pipeline adds (those are
            added inside ``TokenizeText``, so pass the raw env).
    """
    if is_tokenized(env.observation_space):
        keys = env.observation_space.spaces
        wanted = {PRIVILEGED_KEY: pipeline.privileged, ACTION_MASK_KEY: pipeline.action_mask}
        missing = [key for key, carried in wanted.items() if carried and key not in keys]
        if missing:
            raise PipelineError(
                f"This env is already tokenized but lacks the {', '.join(map(repr, missing))} "
                "entry the pipeline adds inside TokenizeText; pass the raw text env instead."
            )
        return env
    if pipeline.privileged:
        env = PrivilegedObservation(env)
    if pipeline.action_mask:
        env = ActionMaskObservation(env)
    return TokenizeText(env, pipeline.encoder, max_length=pipeline.max_length)


def observation_converter(env: gym.Env, pipeline: ObservationPipeline) -> Callable[[Any], Any]:
    """A function from a raw observation of ``env`` to the model input the pipeline makes.

    A raw observation without the ``"privileged"`` entry gets zeros there: no action changes
    (only the critic and the auxiliary head read the entry), but a privileged critic's values
    are then meaningless; a planner that wants values adds the simulated state's entry itself.
    A raw observation without the ``"action_mask"`` entry gets ``env``'s current
    ``action_masks()``: convert an observation while ``env`` is in its state.

    Args:
        env: A raw text env (an already tokenized one gives the identity).
        pipeline: The model's pipeline.

    Returns:
        The function (tokenizes with the pipeline's tokenizer; fills missing entries).
    """
    wrapper = wrap_observations(env, pipeline)
    if wrapper is env:
        return lambda observation: observation
    privileged = pipeline.privileged
    masks = env.get_wrapper_attr("action_masks") if pipeline.action_mask else None
    if not privileged and masks is None:
        return wrapper.observation
    zeros = (
        np.zeros(wrapper.observation_space[PRIVILEGED_KEY].shape, dtype=np.float32)
        if privileged
        else None
    )

    def convert(observation: Any) -> dict[str, Any]:
        if privileged and PRIVILEGED_KEY not in observation:
            observation = {**observation, PRIVILEGED_KEY: zeros}
        if masks is not None and ACTION_MASK_KEY not in observation:
            mask = np.asarray(masks(), dtype=np.float32).reshape(-1)
            observation = {**observation, ACTION_MASK_KEY: mask}
        return wrapper.observation(observation)

    return convert


def wrap_for_training(
    env: gym.Env,
    *,
    reward_scale: float = 1.0,
    reward_shaping: bool = False,
    expected_rewards: bool = False,
) -> gym.Env:
    """Episode statistics, then the rewards PPO learns from (training only).

    Args:
        env: The env the model reads (from :func:`wrap_observations`).
        reward_scale: Multiplies every reward the agent receives (1.0: unchanged).
        reward_shaping: Add the change of the env's hidden ``shaping_potential()`` to every
            reward (:class:`rlagent.wrappers.PotentialShaping`).
        expected_rewards: Replace each reward by the env's ``expected_reward()`` of the action
            (shaped when ``reward_shaping``; :class:`rlagent.wrappers.ExpectedReward`).

    Returns:
        ``Monitor(env)`` (so episode statistics keep the env's own rewards), then
        ``ExpectedReward`` or ``PotentialShaping``, then ``TransformReward`` when
        ``reward_scale != 1``.

    Raises:
        ValueError: ``reward_scale`` is not a finite number > 0.
    """
    scale = _reward_scale(reward_scale)
    env = Monitor(env)
    if expected_rewards:
        env = ExpectedReward(env, shaped=reward_shaping)
    elif reward_shaping:
        env = PotentialShaping(env)
    if scale != 1.0:
        env = gym.wrappers.TransformReward(env, partial(operator.mul, scale))
    return env


def _reward_scale(value: float) -> float:
    scale = float(value)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"reward_scale must be a finite number > 0, got {value!r}.")
    return scale


def _factories(
    env_or_id: str | gym.Env | Callable[[], gym.Env], n_envs: int, env_kwargs: Mapping[str, Any]
) -> list[Callable[[], gym.Env]]:
    if isinstance(env_or_id, str):
        env_id = env_or_id
        from rlagent.env_making import make_env

        return [lambda: make_env(env_id, env_kwargs) for _ in range(n_envs)]
    if isinstance(env_or_id, gym.Env):
        if env_kwargs:
            raise ValueError(
                f"env_kwargs {dict(env_kwargs)} given with an env instance; pass them when you "
                "build the env, or pass a registered env id instead."
            )
        # Copies made now, before any wrapper holds a reference to the original.
        envs = [env_or_id] + [copy.deepcopy(env_or_id) for _ in range(n_envs - 1)]
        return [lambda e=e: e for e in envs]
    if callable(env_or_id):
        factory = env_or_id
        return [lambda: factory(**env_kwargs) for _ in range(n_envs)]
    raise TypeError(
        "env_or_id must be a registered env id (str), a gymnasium.Env or a function returning "
        f"one, got {type(env_or_id).__name__}."
    )


def make_vec_env(
    env_or_id: str | gym.Env | Callable[[], gym.Env],
    *,
    pipeline: ObservationPipeline | None = None,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    encoder: str | None = None,
    max_length: int | None = None,
    vec_env_cls: type[VecEnv] | None = None,
    reward_scale: float = 1.0,
    privileged: bool | None = None,
    reward_shaping: bool = False,
    expected_rewards: bool = False,
    action_masks: bool | None = None,
) -> VecEnv:
    """A vectorised, tokenized, Monitor-wrapped copy of a text env.

    Each env is ``wrap_for_training(wrap_observations(env, pipeline), ...)``.

    Args:
        env_or_id: A registered env id, a ``gymnasium.Env`` (deep-copied for extra envs) or a
            function returning a new env (called with ``**env_kwargs``).
        pipeline: The observation pipeline; or leave it out and give ``encoder``,
            ``max_length``, ``privileged`` and ``action_masks`` (defaults: the default
            encoder, 64 tokens, neither entry).
        n_envs: Number of parallel envs.
        seed: Env ``i`` is reset with ``seed + i`` on its first reset.
        env_kwargs: Keyword arguments for ``gym.make`` (or the factory).
        encoder: Encoder whose tokenizer to use (name or folder), without ``pipeline``.
        max_length: Tokens per text segment, without ``pipeline``.
        vec_env_cls: ``DummyVecEnv`` (default) or ``SubprocVecEnv``.
        reward_scale: Multiplies every reward the agent receives (1.0: unchanged). Applied
            outside ``Monitor``, so episode statistics keep the env's own rewards.
        privileged: Add the env's hidden ``privileged_features()`` as the ``"privileged"``
            entry, without ``pipeline``.
        reward_shaping: Add the change of the env's hidden ``shaping_potential()`` to every
            reward (:class:`rlagent.wrappers.PotentialShaping`), outside ``Monitor``.
        expected_rewards: Replace each reward by the env's ``expected_reward()`` of the action
            (shaped when ``reward_shaping``; :class:`rlagent.wrappers.ExpectedReward`), outside
            ``Monitor``.
        action_masks: Add the env's ``action_masks()`` as the ``"action_mask"`` entry, without
            ``pipeline``.

    Returns:
        The ``VecEnv``.

    Raises:
        ValueError: ``n_envs < 1``, a bad ``reward_scale``, or ``pipeline`` given together with
            ``encoder``, ``max_length``, ``privileged`` or ``action_masks``.
    """
    if int(n_envs) < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs!r}.")
    loose = {
        "encoder": encoder,
        "max_length": max_length,
        "privileged": privileged,
        "action_masks": action_masks,
    }
    if pipeline is None:
        pipeline = ObservationPipeline(
            encoder=os.fspath(encoder) if encoder is not None else DEFAULT_ENCODER,
            max_length=64 if max_length is None else max_length,
            privileged=bool(privileged),
            action_mask=bool(action_masks),
        )
    elif any(value is not None for value in loose.values()):
        given = ", ".join(name for name, value in loose.items() if value is not None)
        raise ValueError(
            f"make_vec_env got both pipeline and {given}; the pipeline already says how "
            "observations are built, so drop the other arguments (or the pipeline)."
        )
    rewards = {
        "reward_scale": _reward_scale(reward_scale),
        "reward_shaping": reward_shaping,
        "expected_rewards": expected_rewards,
    }

    def wrap(factory: Callable[[], gym.Env]) -> Callable[[], gym.Env]:
        def build() -> gym.Env:
            return wrap_for_training(wrap_observations(factory(), pipeline), **rewards)

        return build

    fns = [wrap(f) for f in _factories(env_or_id, int(n_envs), dict(env_kwargs or {}))]
    vec = (vec_env_cls or DummyVecEnv)(fns)
    if seed is not None:
        vec.seed(int(seed))
        vec.action_space.seed(int(seed))
    return vec


def pipeline_of(model: Any) -> ObservationPipeline:
    """The observation pipeline of a text model.

    Reads ``model.rlagent_spec["pipeline"]`` (saved by :func:`rlagent.make_ppo`). For a
    model saved before pipelines were recorded, or a PPO built by hand with a text features
    extractor, reads it from the model itself: the encoder and ``max_length`` from the spec or
    the extractor and observation space, the ``"privileged"`` and ``"action_mask"`` entries
    from the observation space, the entries' roles from the policy.

    Args:
        model: A text agent (a Stable-Baselines3 model).

    Returns:
        The pipeline.

    Raises:
        NotATextModelError: When the model has neither a recorded pipeline nor a text
            features extractor reading token ids.
    """
    spec = getattr(model, "rlagent_spec", None) or {}
    if "pipeline" in spec:
        return ObservationPipeline.from_dict(spec["pipeline"])
    policy = getattr(model, "policy", None)
    extractor = getattr(policy, "features_extractor", None)
    space = getattr(model, "observation_space", None)
    encoder = spec.get("encoder") or getattr(extractor, "encoder_name", None)
    if encoder is None or not is_tokenized(space):
        raise NotATextModelError(
            f"{type(model).__name__} has no rlagent_spec and its features extractor is "
            f"{type(extractor).__name__}, not TextFeaturesExtractor; build it with "
            "rlagent.make_ppo."
        )
    keys = space.spaces
    ids = next(sub for key, sub in keys.items() if key.endswith(_IDS))
    return ObservationPipeline(
        encoder=encoder,
        max_length=int(spec.get("max_length") or ids.shape[-1]),
        privileged=PRIVILEGED_KEY in keys,
        action_mask=ACTION_MASK_KEY in keys,
        critic_only=tuple(getattr(policy, "critic_only", None) or ()),
        auxiliary_targets=getattr(policy, "auxiliary_targets", None),
        candidates=getattr(policy, "candidates", None),
    )
