"""Building and loading PPO agents that read text through a pretrained encoder.

:func:`make_ppo` returns a plain Stable-Baselines3 ``PPO`` whose policy is a
:class:`rlagent.agents.TextActorCriticPolicy` with a
:class:`rlagent.encoders.TextFeaturesExtractor`. The agent remembers how it was built in
``model.rlagent_spec`` (a plain dict saved with the model), its observation pipeline
(:class:`rlagent.pipeline.ObservationPipeline`) included, so :func:`load`,
:func:`wrap_for_model` and :func:`observation_function` build the same observations later.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from rlagent.agents.policy import TextActorCriticPolicy
from rlagent.agents.settings import (
    DEFAULT_NET_ARCH,
    PPO_DEFAULTS,
    TRAINABLE_ENCODER_LEARNING_RATE,
    AgentConfig,
    AuxiliaryConfig,
    ConfigError,
    WarmStartConfig,
    resolve_schedules,
)
from rlagent.agents.text_ppo import TextPPO
from rlagent.encoders.dtypes import LEGACY_DTYPES
from rlagent.encoders.extractor import TextFeaturesExtractor
from rlagent.encoders.loading import encoder_checksum
from rlagent.pipeline import (
    NotATextModelError,
    ObservationPipeline,
    is_tokenized,
    make_vec_env,
    observation_converter,
    pipeline_of,
    wrap_observations,
)
from rlagent.wrappers import ACTION_MASK_KEY, PRIVILEGED_KEY

__all__ = [
    "DEFAULT_NET_ARCH",
    "PPO_DEFAULTS",
    "TRAINABLE_ENCODER_LEARNING_RATE",
    "load",
    "make_ppo",
    "observation_function",
    "resolve_device",
    "spec_of",
    "vec_env_for",
    "wrap_for_model",
]

_IDS = "_input_ids"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _env_id(env_or_id: Any) -> str | None:
    if isinstance(env_or_id, str):
        return env_or_id
    spec = getattr(getattr(env_or_id, "unwrapped", None), "spec", None) or getattr(
        env_or_id, "spec", None
    )
    return getattr(spec, "id", None)


def make_ppo(
    env_or_id: str | gym.Env | VecEnv | Callable[[], gym.Env],
    *,
    config: AgentConfig | None = None,
    encoder: str | None = None,
    encoder_mode: str | None = None,
    n_envs: int | None = None,
    device: str | torch.device = "auto",
    seed: int | None = None,
    tensorboard_log: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    max_length: int | None = None,
    pooling: str | None = None,
    encoder_layers: Sequence[int] | None = None,
    dtype: str | None = None,
    encoder_dtype: str | None = None,
    policy_kwargs: Mapping[str, Any] | None = None,
    reward_scale: float | None = None,
    privileged_critic: bool | None = None,
    reward_shaping: bool | None = None,
    expected_rewards: bool | None = None,
    auxiliary: AuxiliaryConfig | Mapping[str, Any] | None = None,
    auxiliary_targets: bool | None = None,
    action_masks: bool | None = None,
    warm_start: WarmStartConfig | Mapping[str, Any] | bool | None = None,
    **ppo_kwargs: Any,
) -> TextPPO:
    """A Stable-Baselines3 PPO agent that reads text through a pretrained encoder.

    The settings come from ``config``: by default the env's own settings when ``env_or_id`` is
    a registered id with a bundled config (:meth:`rlagent.agents.AgentConfig.for_env`, what
    ``rlagent train --env ID`` uses), otherwise :class:`rlagent.agents.AgentConfig`'s
    defaults. Every argument given here (not ``None``) wins over it; ``env_kwargs``,
    ``policy_kwargs`` and ``auxiliary`` merge key by key. PPO's arguments are
    :data:`PPO_DEFAULTS` under the config's ``ppo`` under ``ppo_kwargs``, with
    ``learning_rate=1e-4`` when the encoder trains (``lora``/``full``); heads
    ``net_arch=dict(pi=[128, 64], vf=[128, 64])`` unless the policy kwargs set them;
    ``ortho_init`` on (the policy skips the encoder); ``verbose=0``.

    Args:
        env_or_id: A registered env id, a ``gymnasium.Env`` with text observations, a function
            returning one, or a ``VecEnv`` already tokenized (``n_envs``, ``env_kwargs``,
            ``max_length`` then come from it).
        config: The agent's settings (an :class:`rlagent.agents.AgentConfig`, or a
            :class:`rlagent.training.TrainConfig`, whose run settings are ignored).
        encoder: Encoder name or folder (see :func:`rlagent.encoders.load_encoder`).
        encoder_mode: ``"frozen"``, ``"lora"`` or ``"full"``.
        n_envs: Parallel envs when the env is built here.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        seed: Seeds torch, numpy, the envs and the action space (via SB3).
        tensorboard_log: Folder for TensorBoard logs, or ``None``.
        env_kwargs: Keyword arguments for the env.
        max_length: Tokens per text segment.
        pooling: ``"mean"`` or ``"cls"``.
        encoder_layers: Hidden states to pool and concatenate per segment (indices into the
            encoder's ``hidden_states``: 0 the embeddings, -1 the last layer), e.g. ``[-1, 3]``;
            ``[-1]`` pools the last layer only.
        dtype: The older name of ``encoder_dtype`` (``"auto"``, ``"float32"``, ``"bfloat16"``).
        encoder_dtype: What the encoder runs in: ``"auto"``, ``"fp32"``, ``"bf16"`` or
            ``"int8"`` (frozen mode only; see :class:`rlagent.agents.AgentConfig`).
        policy_kwargs: Extra policy kwargs; ``features_extractor_kwargs`` in it are merged into
            the text extractor's (strings and numbers only, never modules). ``candidates``,
            ``candidate_features`` and ``scorer_arch`` select the candidate-scoring head (see
            :class:`TextActorCriticPolicy`).
        reward_scale: Multiplies the rewards PPO learns from when the env is built here (see
            :func:`make_vec_env`); value targets of order 1 train best.
        privileged_critic: Train an asymmetric actor-critic: the env built here carries its
            hidden ``privileged_features()`` (e.g. a user's remaining time) as the
            ``"privileged"`` entry, which only the critic reads (``critic_only``); actions
            never depend on it. Lower-variance advantages where the return hinges on hidden
            state. Needs an env id, env or factory (not a ``VecEnv``).
        reward_shaping: Learn from potential-shaped rewards ``r + phi(s') - phi(s)``, with the
            env's hidden ``shaping_potential()`` as ``phi``
            (:class:`rlagent.wrappers.PotentialShaping`): an undiscounted shaping that keeps
            every policy's rank under the undiscounted return and moves a reward that arrives
            late (a session lengthened by a good item) to the step that earned it. Needs an env
            id, env or factory (not a ``VecEnv``). A planner guided by this model plans on
            shaped rewards too (see docs/planning.md).
        expected_rewards: Learn from each step's expected (shaped) reward, the env's
            ``expected_reward()`` of the action given the hidden state, instead of the sampled
            one (:class:`rlagent.wrappers.ExpectedReward`): the same expected return for every
            policy, without the noise of the sampled response. Needs an env id, env or factory.
        auxiliary: The auxiliary head (:class:`rlagent.agents.AuxiliaryConfig`, or a mapping of
            its fields): with ``coef > 0`` the actor gets a head that predicts the env's hidden
            ``privileged_features()`` from the observation (the env built here carries them
            as the ``"privileged"`` entry, which the actor never reads, and the critic reads
            only with ``privileged_critic``), and ``model.learn`` trains it after each rollout
            (:class:`rlagent.agents.AuxiliaryLoss`). Needs an env id, env or factory.
        auxiliary_targets: Build the auxiliary head; defaults to ``auxiliary.coef > 0``. With
            ``auxiliary.coef == 0``, train it by passing :class:`rlagent.agents.AuxiliaryLoss`
            to ``learn(callback=...)``.
        action_masks: Give actions the env's ``action_masks()`` forbids zero probability, when
            acting and in PPO's update (as sb3-contrib's ``MaskablePPO`` does); the env built
            here carries the mask as the ``"action_mask"`` entry, which the policy's layers
            also read. Needs a ``Discrete`` action space and an env id, env or factory.
        warm_start: A warm start from the env's expert, switched on by this argument
            (``True`` for the defaults of :class:`rlagent.agents.WarmStartConfig`, or a
            mapping of its fields or an instance to change them; ``False`` switches a
            config's warm start off): the first ``model.learn``
            trains the policy and critic on the expert's demonstrations in the training env
            before PPO (:func:`rlagent.agents.warm_start`), and PPO keeps a behaviour-cloning
            term whose weight decays to 0 over ``bc_decay_steps``.
        **ppo_kwargs: Any other ``PPO`` argument.

    Returns:
        The model (a :class:`rlagent.agents.TextPPO`, SB3's ``PPO`` that also trains the
        auxiliary head), with ``model.rlagent_spec`` describing how it was built.

    Raises:
        ConfigError: A setting is out of range (see :class:`rlagent.agents.AgentConfig`).
    """
    torch_device = resolve_device(device)
    env_id = _env_id(env_or_id)
    if dtype in LEGACY_DTYPES:  # the older argument, as encoder_dtype (an unknown one is refused)
        if encoder_dtype is not None and encoder_dtype != LEGACY_DTYPES[dtype]:
            raise ConfigError(
                f"make_ppo(dtype={dtype!r}, encoder_dtype={encoder_dtype!r}): dtype is the older "
                "name of encoder_dtype; pass encoder_dtype only"
            )
        dtype, encoder_dtype = None, LEGACY_DTYPES[dtype]
    if config is None:
        config = AgentConfig.for_env(env_or_id) if isinstance(env_or_id, str) else AgentConfig()
    config = config.agent_config().merged(
        {
            "encoder": None if encoder is None else os.fspath(encoder),
            "encoder_mode": encoder_mode,
            "n_envs": n_envs,
            "env_kwargs": env_kwargs,
            "max_length": max_length,
            "pooling": pooling,
            "encoder_layers": None if encoder_layers is None else list(encoder_layers),
            "dtype": dtype,
            "encoder_dtype": encoder_dtype,
            "policy_kwargs": policy_kwargs,
            "reward_scale": reward_scale,
            "privileged_critic": privileged_critic,
            "reward_shaping": reward_shaping,
            "expected_rewards": expected_rewards,
            "action_masks": action_masks,
            "auxiliary": auxiliary,
            "warm_start": _switched_on(warm_start),
        },
        "make_ppo",
    )
    if auxiliary_targets is None:
        auxiliary_targets = config.auxiliary.enabled
    elif config.auxiliary.enabled and not auxiliary_targets:
        raise ValueError(
            f"auxiliary_targets=False, but auxiliary.coef = {config.auxiliary.coef} trains an "
            "auxiliary head; pass auxiliary={'coef': 0.0} for an agent without one."
        )
    pk = _policy_kwargs(config, auxiliary_targets=auxiliary_targets)
    roles = {
        "critic_only": tuple(pk.get("critic_only") or ()),
        "auxiliary_targets": pk.get("auxiliary_targets"),
        "candidates": pk.get("candidates"),
    }
    if isinstance(env_or_id, VecEnv):
        if (
            config.privileged_critic
            or config.reward_shaping
            or config.expected_rewards
            or auxiliary_targets
            or config.action_masks
        ):
            raise ValueError(
                "privileged_critic, reward_shaping, expected_rewards, auxiliary_targets and "
                "action_masks build their own env; pass the env id, env or factory instead of "
                "a VecEnv."
            )
        space = env_or_id.observation_space
        if not is_tokenized(space):
            raise ValueError(
                "The VecEnv passed to make_ppo has raw observations "
                f"({space}); pass the raw env or its id instead, or build "
                "the VecEnv with rlagent.agents.make_vec_env."
            )
        vec_env = env_or_id
        env_id = env_id or _vec_env_id(vec_env)
        # The observation space says what the VecEnv's builder put in it.
        pipeline = ObservationPipeline(
            encoder=config.encoder,
            max_length=_max_length_of(space, config.max_length),
            privileged=PRIVILEGED_KEY in space.spaces,
            action_mask=ACTION_MASK_KEY in space.spaces,
            **roles,
        )
    else:
        pipeline = ObservationPipeline(
            encoder=config.encoder,
            max_length=config.max_length,
            # The one place that decides which agents observe the hidden features.
            privileged=config.privileged_critic or auxiliary_targets,
            action_mask=config.action_masks,
            **roles,
        )
        vec_env = make_vec_env(
            env_or_id,
            pipeline=pipeline,
            n_envs=config.n_envs,
            seed=seed,
            env_kwargs=config.env_kwargs,
            reward_scale=config.reward_scale,
            reward_shaping=config.reward_shaping,
            expected_rewards=config.expected_rewards,
        )
    checksum = encoder_checksum(config.encoder)
    fe_kwargs = {
        "encoder": config.encoder,
        "mode": config.encoder_mode,
        "pooling": config.pooling,
        "layers": None if config.encoder_layers is None else tuple(config.encoder_layers),
        "dtype": config.encoder_dtype,
        "encoder_checksum": checksum,
    }
    fe_kwargs.update(pk.pop("features_extractor_kwargs", None) or {})
    for key, value in fe_kwargs.items():
        if isinstance(value, nn.Module):
            raise TypeError(
                f"features_extractor_kwargs[{key!r}] is an nn.Module; pass a name or folder path "
                "(a module would be pickled into every checkpoint)."
            )
    pk.setdefault("features_extractor_class", TextFeaturesExtractor)
    pk["features_extractor_kwargs"] = fe_kwargs
    pk.setdefault("net_arch", {k: list(v) for k, v in DEFAULT_NET_ARCH.items()})
    kwargs = config.ppo_kwargs()
    kwargs["verbose"] = 0
    kwargs.update(resolve_schedules(ppo_kwargs))
    kwargs["n_steps"] = int(kwargs["n_steps"])
    model = TextPPO(
        TextActorCriticPolicy,
        vec_env,
        device=torch_device,
        seed=seed,
        tensorboard_log=tensorboard_log,
        policy_kwargs=pk,
        **kwargs,
    )
    model.rlagent_spec = {
        "env_id": env_id,
        "env_kwargs": dict(config.env_kwargs),
        "encoder": config.encoder,
        "encoder_checksum": checksum,
        "encoder_mode": config.encoder_mode,
        "max_length": pipeline.max_length,
        "pooling": config.pooling,
        "encoder_layers": None if config.encoder_layers is None else list(config.encoder_layers),
        "encoder_dtype": config.encoder_dtype,
        "n_envs": int(vec_env.num_envs),
        "seed": seed,
        "reward_scale": float(config.reward_scale),
        "privileged_critic": bool(config.privileged_critic),
        "reward_shaping": bool(config.reward_shaping),
        "expected_rewards": bool(config.expected_rewards),
        "auxiliary_targets": bool(auxiliary_targets),
        "action_masks": bool(config.action_masks),
        "auxiliary": config.auxiliary.to_dict(),
        "pipeline": pipeline.to_dict(),
    }
    if config.warm_start.enabled:
        model.rlagent_spec["warm_start"] = config.warm_start.to_dict()
    return model


def _switched_on(warm_start: WarmStartConfig | Mapping[str, Any] | bool | None) -> Any:
    """``make_ppo``'s ``warm_start`` argument as a group update: given, it switches it on."""
    if warm_start is None or isinstance(warm_start, bool):
        return None if warm_start is None else {"enabled": warm_start}
    if isinstance(warm_start, WarmStartConfig):
        return {**warm_start.to_dict(), "enabled": True}
    if isinstance(warm_start, Mapping):
        return {"enabled": True, **warm_start}
    return warm_start  # refused with a message by the settings' check


def _policy_kwargs(config: AgentConfig, *, auxiliary_targets: bool) -> dict[str, Any]:
    """The policy's keyword arguments: the config's, with the settings that name entries."""
    pk = dict(config.policy_kwargs)
    if config.auxiliary.bottleneck:
        pk["auxiliary_bottleneck"] = True
    if config.auxiliary.noisy:
        pk["belief_noise"] = config.auxiliary.belief_noise
    if config.privileged_critic:
        pk["critic_only"] = list(dict.fromkeys([*(pk.get("critic_only") or ()), PRIVILEGED_KEY]))
    if auxiliary_targets:
        pk["auxiliary_targets"] = PRIVILEGED_KEY
    if config.action_masks:
        pk["action_mask"] = ACTION_MASK_KEY
    return pk


def _vec_env_id(vec_env: VecEnv) -> str | None:
    try:
        specs = vec_env.get_attr("spec")
    except Exception:  # noqa: BLE001  (some VecEnvs cannot answer get_attr)
        return None
    return getattr(specs[0], "id", None) if specs else None


def _max_length_of(space: spaces.Space, fallback: int) -> int:
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            if key.endswith(_IDS):
                return int(sub.shape[-1])
    return int(fallback)


def spec_of(model: PPO) -> dict[str, Any]:
    """How a text agent was built: env id and kwargs, encoder, mode, pooling, its pipeline...

    Uses ``model.rlagent_spec`` (set by :func:`make_ppo`, kept by save/load); for a PPO built by
    hand with a :class:`TextFeaturesExtractor`, rebuilds what it can from the policy.

    Args:
        model: The agent.

    Returns:
        A copy of the spec dict; ``spec["pipeline"]`` is its
        :class:`rlagent.pipeline.ObservationPipeline` as a dict (absent for models saved
        before pipelines were recorded: :func:`rlagent.pipeline.pipeline_of` reads those).

    Raises:
        NotATextModelError: When the model has neither a spec nor a text features extractor.
    """
    spec = getattr(model, "rlagent_spec", None)
    if spec is not None:
        return dict(spec)
    extractor = getattr(getattr(model, "policy", None), "features_extractor", None)
    if not isinstance(extractor, TextFeaturesExtractor):
        raise NotATextModelError(
            f"{type(model).__name__} has no rlagent_spec and its features extractor is "
            f"{type(extractor).__name__}, not TextFeaturesExtractor; build it with "
            "rlagent.agents.make_ppo."
        )
    pipeline = pipeline_of(model)
    return {
        "env_id": None,
        "env_kwargs": {},
        "encoder": extractor.encoder_name,
        "encoder_checksum": extractor.encoder_checksum,
        "encoder_mode": extractor.mode,
        "max_length": pipeline.max_length,
        "pooling": extractor.pooling,
        "encoder_layers": None if extractor.layers is None else list(extractor.layers),
        "encoder_dtype": extractor.encoder_dtype,
        "n_envs": getattr(model, "n_envs", 1),
        "seed": getattr(model, "seed", None),
        "action_masks": getattr(model.policy, "action_mask", None) == ACTION_MASK_KEY,
        "pipeline": pipeline.to_dict(),
    }


def wrap_for_model(env: gym.Env, model: PPO) -> gym.Env:
    """Wrap a raw text env the way ``model`` expects its observations.

    Args:
        env: A raw text env (or one already tokenized, returned unchanged).
        model: A text agent from :func:`make_ppo` or :func:`load`.

    Returns:
        The env built by :func:`rlagent.pipeline.wrap_observations` from the model's pipeline:
        ``TokenizeText(env)`` with the model's tokenizer and ``max_length``
        (``PrivilegedObservation`` and ``ActionMaskObservation`` inside it when the model
        reads those entries).
    """
    return wrap_observations(env, pipeline_of(model))


def observation_function(env: gym.Env, model: PPO) -> Callable[[Any], Any]:
    """A function from a raw observation of ``env`` to the input ``model.predict`` expects.

    See :func:`rlagent.pipeline.observation_converter`: a missing ``"privileged"`` entry gets
    zeros (actions never read it), a missing ``"action_mask"`` entry gets ``env``'s current
    ``action_masks()``.

    Args:
        env: A raw text env.
        model: A text agent from :func:`make_ppo` or :func:`load`.

    Returns:
        The function.
    """
    return observation_converter(env, pipeline_of(model))


def vec_env_for(
    env: str | gym.Env, spec: Mapping[str, Any], pipeline: ObservationPipeline
) -> VecEnv:
    """One env, wrapped as the saved model with ``spec`` and ``pipeline`` reads it.

    Args:
        env: An env id, built with the model's own ``env_kwargs`` when it is the model's env,
            or a raw ``gymnasium.Env``.
        spec: The model's ``rlagent_spec``.
        pipeline: The model's observation pipeline.

    Returns:
        A one-env ``VecEnv`` from :func:`rlagent.pipeline.make_vec_env`.
    """
    same_env = isinstance(env, str) and env == spec.get("env_id")
    return make_vec_env(
        env, pipeline=pipeline, n_envs=1, env_kwargs=spec.get("env_kwargs") if same_env else None
    )


def load(
    path: str | os.PathLike,
    *,
    env: str | gym.Env | VecEnv | None = None,
    device: str | torch.device = "auto",
) -> PPO:
    """Load a text agent saved with ``model.save(path)`` (a Stable-Baselines3 ``.zip``).

    This unpickles the file, which runs code stored in it: use it only for files you trust.
    :func:`rlagent.agents.load` calls it only with ``trust=True``; model directories load with
    :func:`rlagent.agents.load_model` instead. The encoder is loaded again by name; in frozen
    mode its checksum is compared with the one recorded at training time
    (:class:`rlagent.encoders.EncoderChecksumError` on a mismatch).

    Args:
        path: The ``.zip`` file.
        env: Optional env to attach: an env id (built with the saved ``env_kwargs``), a raw
            ``gymnasium.Env`` (both through the model's observation pipeline) or a tokenized
            ``VecEnv``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...

    Returns:
        The ``PPO`` model, ``model.rlagent_spec`` restored.
    """
    model = TextPPO.load(os.fspath(path), device=resolve_device(device))
    if env is None:
        return model
    vec = env if isinstance(env, VecEnv) else vec_env_for(env, spec_of(model), pipeline_of(model))
    if vec.num_envs != model.n_envs:
        # set_env cannot change the number of envs; loading with the env rebuilds the buffers.
        model = TextPPO.load(os.fspath(path), env=vec, device=resolve_device(device))
        return model
    model.set_env(vec)
    return model
