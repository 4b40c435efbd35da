"""Building, saving and loading PPO agents that read text through a pretrained encoder.

:func:`make_ppo` returns a plain Stable-Baselines3 ``PPO`` whose policy is a
:class:`TextActorCriticPolicy` with a :class:`rlagent.encoders.TextFeaturesExtractor`; the
environment is tokenized by :class:`rlagent.wrappers.TokenizeText`. The agent remembers how it
was built in ``model.rlagent_spec`` (a plain dict saved with the model), so :func:`load` and
:func:`wrap_for_model` can rebuild the same observation pipeline later.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, MultiInputActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from rlagent.agents.asymmetric import ActorInputMask, CriticOnlyError, critic_only_columns
from rlagent.agents.auxiliary import (
    AuxiliaryBottleneck,
    AuxiliaryTargetsError,
    belief_noise_is_on,
    belief_noise_spec,
)
from rlagent.agents.candidates import (
    CandidateLayout,
    CandidateLayoutError,
    CandidateMlpExtractor,
    CandidateScorer,
    candidate_layout,
)
from rlagent.agents.slate import SlateDistribution
from rlagent.encoders.extractor import TextFeaturesExtractor, is_pretrained_module
from rlagent.encoders.loading import DEFAULT_ENCODER, encoder_checksum
from rlagent.pipeline import (
    NotATextModelError,
    ObservationPipeline,
    is_tokenized,
    make_vec_env,
    observation_converter,
    pipeline_of,
    wrap_observations,
)
from rlagent.wrappers import ACTION_MASK_KEY, PRIVILEGED_KEY, ActionMaskError

__all__ = [
    "PPO_DEFAULTS",
    "NotATextModelError",
    "TextActorCriticPolicy",
    "load",
    "make_ppo",
    "make_vec_env",
    "observation_function",
    "resolve_device",
    "spec_of",
    "wrap_for_model",
]

#: PPO hyperparameters :func:`make_ppo` uses unless overridden. Rollouts of ``n_steps`` per env
#: (512 frames with the default 4 envs), small minibatches and a few epochs suit short text
#: episodes; the entropy bonus keeps early exploration over discrete replies alive.
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

_IDS = "_input_ids"
#: Logit of a masked action (its probability underflows to 0, as in sb3-contrib).
_MASKED_LOGIT = -1e8


class TextActorCriticPolicy(MultiInputActorCriticPolicy):
    """SB3's multi-input actor-critic policy that never re-initialises a pretrained encoder.

    PPO's ``ortho_init=True`` applies orthogonal initialisation to every ``nn.Linear`` reachable
    from the features extractor, which would overwrite BERT's pretrained weights (and LoRA's
    zero-initialised adapters). This policy skips every module that the text extractor marks as
    pretrained, so the heads still get orthogonal initialisation and the encoder stays as loaded.
    The features extractor defaults to :class:`rlagent.encoders.TextFeaturesExtractor`.

    With ``candidates="<text key>"`` the action head scores candidates instead (see
    :mod:`rlagent.agents.candidates`): the actions must be positions in that entry's segments
    (``Discrete(n)``, or ``MultiDiscrete([n] * k)`` for a slate of ``k`` distinct items, drawn
    by :class:`rlagent.agents.slate.SlateDistribution`), and one shared MLP (``scorer_arch``)
    scores each candidate from its embedding, its numeric features (``candidate_features``;
    default: numeric entries named ``candidate_*`` with one value per candidate) and the
    actor's latent vector as context. The critic is unchanged. ``shorter_slates=True`` lets a
    slate end early (a *stop* option scored from the context; a stopped slate repeats its first
    position, which an env that shows a repeated position once reads as a shorter slate).

    ``critic_only=[key, ...]`` names numeric observation entries that only the critic reads
    (an asymmetric actor-critic, see :mod:`rlagent.agents.asymmetric`): the actor sees them as
    zeros, so actions depend on the rest of the observation alone.

    ``auxiliary_targets="<key>"`` (a numeric entry with values in [0, 1]) adds a linear
    ``auxiliary_head`` on the actor's latent vector that predicts that entry from the rest of
    the observation (see :mod:`rlagent.agents.auxiliary`); it trains only through
    :class:`rlagent.agents.AuxiliaryLoss` and never affects acting. The actor never reads the
    entry; the critic reads it only if it is also in ``critic_only``. With
    ``auxiliary_bottleneck=True`` the head sits on the features instead, and the actor reads
    only its predicted probabilities and the numeric entries
    (:class:`rlagent.agents.AuxiliaryBottleneck`); ``belief_noise=sigma`` perturbs the
    predictions it reads while collecting rollouts and training (never when predicting), so
    that it learns what to do when the probe is unsure.

    ``action_mask="<key>"`` names a numeric entry holding one value per action (1 allowed, 0
    not; see :class:`rlagent.wrappers.ActionMaskObservation`): masked actions get zero
    probability when acting and in PPO's update, as in sb3-contrib's ``MaskablePPO``. Needs a
    ``Discrete`` action space and the plain action head.

    Args:
        *args: Positional arguments of SB3's ``MultiInputActorCriticPolicy``.
        candidates: Text entry holding one segment per candidate, or ``None`` for the plain
            linear head.
        candidate_features: Numeric entries with one value per candidate.
        scorer_arch: Hidden layer sizes of the candidate scorer.
        shorter_slates: Let the candidate head end a slate before its last slot.
        critic_only: Numeric entries for the critic only (e.g. ``["privileged"]``).
        auxiliary_targets: A numeric entry for the actor's auxiliary head to predict.
        auxiliary_bottleneck: Let the actor read the auxiliary predictions instead of the text.
        belief_noise: Standard deviation (in logits) of the training perturbation of the
            predictions a bottleneck actor reads, one for all targets or a list with one per
            target; needs ``auxiliary_bottleneck``.
        action_mask: A numeric entry of allowed actions that masks the action distribution.
        **kwargs: Keyword arguments of SB3's ``MultiInputActorCriticPolicy``.
    """

    def __init__(
        self,
        *args: Any,
        candidates: str | None = None,
        candidate_features: Sequence[str] | None = None,
        scorer_arch: Sequence[int] = (128,),
        critic_only: Sequence[str] | None = None,
        shorter_slates: bool = False,
        auxiliary_targets: str | None = None,
        auxiliary_bottleneck: bool = False,
        belief_noise: float | Sequence[float] = 0.0,
        action_mask: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("features_extractor_class", TextFeaturesExtractor)
        # Read by _build, which the parent constructor calls.
        self.candidates = candidates
        self.candidate_features = None if candidate_features is None else list(candidate_features)
        self.scorer_arch = [int(size) for size in scorer_arch]
        self.shorter_slates = bool(shorter_slates)
        self.candidate_layout: CandidateLayout | None = None
        self.critic_only = None if critic_only is None else [str(k) for k in critic_only]
        self.auxiliary_targets = None if auxiliary_targets is None else str(auxiliary_targets)
        self.auxiliary_head: nn.Linear | None = None
        self.auxiliary_bottleneck = bool(auxiliary_bottleneck)
        self.belief_noise = belief_noise_spec(belief_noise)
        self.action_mask = None if action_mask is None else str(action_mask)
        super().__init__(*args, **kwargs)
        if self.action_mask is not None:
            self._check_action_mask()

    def init_weights(self, module: nn.Module, gain: float = 1) -> None:  # type: ignore[override]
        """Orthogonal initialisation of ``module``, except modules of a pretrained encoder."""
        if is_pretrained_module(module):
            return
        ActorCriticPolicy.init_weights(module, gain=gain)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            candidates=self.candidates,
            candidate_features=self.candidate_features,
            scorer_arch=self.scorer_arch,
            critic_only=self.critic_only,
            shorter_slates=self.shorter_slates,
            auxiliary_targets=self.auxiliary_targets,
            auxiliary_bottleneck=self.auxiliary_bottleneck,
            belief_noise=self.belief_noise,
            action_mask=self.action_mask,
        )
        return data

    def _build_mlp_extractor(self) -> None:
        if belief_noise_is_on(self.belief_noise) and not self.auxiliary_bottleneck:
            raise AuxiliaryTargetsError(
                f"policy_kwargs['belief_noise'] = {self.belief_noise!r} perturbs the predictions "
                "a bottleneck actor reads; set policy_kwargs['auxiliary_bottleneck'] = True too "
                "(or drop belief_noise)."
            )
        super()._build_mlp_extractor()
        self._build_candidate_extractor()
        critic_only = self.critic_only or []
        key = self.auxiliary_targets
        hidden = [] if key is None or key in critic_only else [key]
        if critic_only or hidden:
            extractor = self.features_extractor
            if not isinstance(extractor, TextFeaturesExtractor):
                raise CriticOnlyError(
                    "policy_kwargs['critic_only'] and ['auxiliary_targets'] need the text "
                    f"features extractor (TextFeaturesExtractor), got {type(extractor).__name__}."
                )
            offset = sum(entry.segments for entry in extractor._text) * extractor.embedding_dim
            columns = critic_only_columns(extractor._numeric, offset, critic_only)
            try:
                hidden_columns = critic_only_columns(extractor._numeric, offset, hidden)
            except CriticOnlyError:
                raise AuxiliaryTargetsError(
                    f"policy_kwargs['auxiliary_targets'] = {key!r} is not a numeric "
                    "observation entry; make_ppo(..., auxiliary_targets=True) adds the env's "
                    "privileged features as 'privileged'."
                ) from None
            self.mlp_extractor = ActorInputMask(
                self.mlp_extractor, extractor.features_dim, columns, hidden_columns
            )
        if key is None:
            if self.auxiliary_bottleneck:
                raise AuxiliaryTargetsError(
                    "policy_kwargs['auxiliary_bottleneck'] needs auxiliary targets for the actor "
                    "to read; build with make_ppo(..., auxiliary_targets=True) (or "
                    "auxiliary_coef > 0 in a training config)."
                )
            return
        size = int(np.prod(self.observation_space.spaces[key].shape))
        if not self.auxiliary_bottleneck:
            self.auxiliary_head = nn.Linear(self.mlp_extractor.latent_dim_pi, size)
            return
        if self.candidates is not None:
            raise AuxiliaryTargetsError(
                "policy_kwargs['auxiliary_bottleneck'] cannot be combined with the "
                "candidate-scoring head (which reads each candidate's text)."
            )
        # The targets are hidden from the actor, so the ActorInputMask above was built (and
        # ``extractor`` and ``offset`` are set).
        masked = self.mlp_extractor
        numeric = [c for c in range(offset, extractor.features_dim) if masked.keep[c] > 0]
        pi_arch = self.net_arch.get("pi", []) if isinstance(self.net_arch, dict) else self.net_arch
        masked.base.policy_net = nn.Identity()  # the bottleneck's own MLP acts instead
        self.mlp_extractor = AuxiliaryBottleneck(
            masked,
            extractor.features_dim,
            masked.keep,
            numeric,
            size,
            list(pi_arch),
            self.activation_fn,
            belief_noise=self.belief_noise,
        )

    def auxiliary_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The auxiliary predictions' logits from a batch of features.

        Raises:
            AuxiliaryTargetsError: When the policy was built without auxiliary targets.
        """
        if self.auxiliary_targets is None:
            raise AuxiliaryTargetsError(
                "The policy has no auxiliary head; build it with make_ppo(..., "
                "auxiliary_targets=True) (or auxiliary_coef > 0 in a training config)."
            )
        if isinstance(self.mlp_extractor, AuxiliaryBottleneck):
            return self.mlp_extractor.predict(features)
        return self.auxiliary_head(self.mlp_extractor.forward_actor(features))

    def _build_candidate_extractor(self) -> None:
        if self.candidates is None:
            if self.shorter_slates:
                raise CandidateLayoutError(
                    "policy_kwargs['shorter_slates'] needs the candidate-scoring head; set "
                    "policy_kwargs['candidates'] to the entry holding the candidate texts."
                )
            return
        extractor = self.features_extractor
        if not isinstance(extractor, TextFeaturesExtractor):
            raise CandidateLayoutError(
                "policy_kwargs['candidates'] needs the text features extractor "
                f"(TextFeaturesExtractor), got {type(extractor).__name__}."
            )
        layout = candidate_layout(
            self.observation_space,
            self.action_space,
            [(entry.name, entry.segments) for entry in extractor._text],
            extractor._numeric,
            extractor.embedding_dim,
            self.candidates,
            self.candidate_features,
        )
        if self.shorter_slates and layout.slots == 1:
            raise CandidateLayoutError(
                "policy_kwargs['shorter_slates'] needs a slate action space "
                f"(MultiDiscrete([n] * k), k >= 2); got {self.action_space}."
            )
        self.candidate_layout = layout
        self.mlp_extractor = CandidateMlpExtractor(self.mlp_extractor, layout)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        layout = self.candidate_layout
        if layout is None:
            return
        # One shared scorer replaces the per-position linear head.
        if layout.slots == 1:
            self.action_dist = CategoricalDistribution(layout.n_candidates)
        else:
            self.action_dist = SlateDistribution(
                layout.n_candidates, layout.slots, stop=self.shorter_slates
            )
        self.action_net = CandidateScorer(
            self.mlp_extractor.context_dim,
            layout.n_candidates,
            layout.width,
            self.scorer_arch,
            self.activation_fn,
            stop=self.shorter_slates,
        )
        if self.ortho_init:
            self.action_net.hidden.apply(partial(self.init_weights, gain=2**0.5))
            self.action_net.out.apply(partial(self.init_weights, gain=0.01))
            if self.action_net.stop is not None:
                self.action_net.stop.apply(partial(self.init_weights, gain=0.01))
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor) -> Distribution:
        if isinstance(self.action_dist, SlateDistribution):
            return self.action_dist.proba_distribution(self.action_net(latent_pi))
        return super()._get_action_dist_from_latent(latent_pi)

    # ----------------------------------------------------------------- action masks
    def _check_action_mask(self) -> None:
        key = self.action_mask
        if not isinstance(self.action_space, spaces.Discrete) or self.candidates is not None:
            raise ActionMaskError(
                f"policy_kwargs['action_mask'] needs a Discrete action space and the plain "
                f"action head; got {self.action_space}"
                + (" with the candidate-scoring head." if self.candidates is not None else ".")
            )
        space = self.observation_space.spaces.get(key)
        n = int(self.action_space.n)
        if not isinstance(space, spaces.Box) or int(np.prod(space.shape)) != n:
            raise ActionMaskError(
                f"policy_kwargs['action_mask'] = {key!r} must name a Box entry with one value "
                f"per action ({n}); make_ppo(..., action_masks=True) adds it as "
                f"{ACTION_MASK_KEY!r} (rlagent.wrappers.ActionMaskObservation)."
            )

    def masked_distribution(
        self, distribution: Distribution, obs: dict[str, torch.Tensor]
    ) -> Distribution:
        """``distribution`` with the actions the observation's mask forbids at zero probability."""
        if self.action_mask is None:
            return distribution
        logits = distribution.distribution.logits
        allowed = obs[self.action_mask].reshape(logits.shape) > 0.5
        distribution.distribution = torch.distributions.Categorical(
            logits=logits.masked_fill(~allowed, _MASKED_LOGIT)
        )
        return distribution

    def _latents(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            return self.mlp_extractor(features)
        pi_features, vf_features = features
        return (
            self.mlp_extractor.forward_actor(pi_features),
            self.mlp_extractor.forward_critic(vf_features),
        )

    def _training_pass(self) -> AbstractContextManager[None]:
        """The bottleneck's belief noise, on for the passes that collect rollouts and train."""
        if isinstance(self.mlp_extractor, AuxiliaryBottleneck):
            return self.mlp_extractor.noisy()
        return nullcontext()

    def forward(
        self, obs: dict[str, torch.Tensor], deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, values and log-probabilities (SB3's, with the action mask applied)."""
        with self._training_pass():
            return self._forward(obs, deterministic)

    def _forward(
        self, obs: dict[str, torch.Tensor], deterministic: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.action_mask is None:
            return super().forward(obs, deterministic)
        latent_pi, latent_vf = self._latents(obs)
        distribution = self.masked_distribution(self._get_action_dist_from_latent(latent_pi), obs)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.action_space.shape))
        return actions, self.value_net(latent_vf), log_prob

    def evaluate_actions(
        self, obs: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Values, log-probabilities and entropy of ``actions`` (with the action mask applied)."""
        with self._training_pass():
            if self.action_mask is None:
                return super().evaluate_actions(obs, actions)
            latent_pi, latent_vf = self._latents(obs)
            distribution = self._get_action_dist_from_latent(latent_pi)
            distribution = self.masked_distribution(distribution, obs)
            return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: dict[str, torch.Tensor]) -> Distribution:
        """The action distribution (with the action mask applied)."""
        return self.masked_distribution(super().get_distribution(obs), obs)


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
    encoder: str = DEFAULT_ENCODER,
    encoder_mode: str = "frozen",
    n_envs: int = 4,
    device: str | torch.device = "auto",
    seed: int | None = None,
    tensorboard_log: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    max_length: int = 64,
    pooling: str = "mean",
    encoder_layers: Sequence[int] | None = None,
    dtype: str = "auto",
    policy_kwargs: Mapping[str, Any] | None = None,
    reward_scale: float = 1.0,
    privileged_critic: bool = False,
    reward_shaping: bool = False,
    expected_rewards: bool = False,
    auxiliary_targets: bool = False,
    action_masks: bool = False,
    **ppo_kwargs: Any,
) -> PPO:
    """A Stable-Baselines3 PPO agent that reads text through a pretrained encoder.

    Defaults (override any through ``ppo_kwargs``): :data:`PPO_DEFAULTS`, with
    ``learning_rate=1e-4`` when the encoder trains (``lora``/``full``); heads
    ``net_arch=dict(pi=[128, 64], vf=[128, 64])``; ``ortho_init`` on (the policy skips the
    encoder); ``verbose=0``.

    Args:
        env_or_id: A registered env id, a ``gymnasium.Env`` with text observations, a function
            returning one, or a ``VecEnv`` already tokenized (``n_envs``, ``env_kwargs``,
            ``max_length`` then come from it).
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
            ``None`` pools the last layer only.
        dtype: Encoder dtype: ``"auto"``, ``"float32"`` or ``"bfloat16"``.
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
        auxiliary_targets: Give the actor an auxiliary head that predicts the env's hidden
            ``privileged_features()`` from the observation (the env built here carries them
            as the ``"privileged"`` entry, which the actor never reads, and the critic reads
            only with ``privileged_critic``); train it by passing
            :class:`rlagent.agents.AuxiliaryLoss` to ``learn(callback=...)``. Needs an env
            id, env or factory.
        action_masks: Give actions the env's ``action_masks()`` forbids zero probability, when
            acting and in PPO's update (as sb3-contrib's ``MaskablePPO`` does); the env built
            here carries the mask as the ``"action_mask"`` entry, which the policy's layers
            also read. Needs a ``Discrete`` action space and an env id, env or factory.
        **ppo_kwargs: Any other ``PPO`` argument.

    Returns:
        The ``PPO`` model, with ``model.rlagent_spec`` describing how it was built.
    """
    torch_device = resolve_device(device)
    env_id = _env_id(env_or_id)
    pk = dict(policy_kwargs or {})
    critic_only = list(pk.get("critic_only") or ())
    if privileged_critic:
        critic_only = list(dict.fromkeys([*critic_only, PRIVILEGED_KEY]))
        pk["critic_only"] = critic_only
    if auxiliary_targets:
        pk["auxiliary_targets"] = PRIVILEGED_KEY
    if action_masks:
        pk["action_mask"] = ACTION_MASK_KEY
    roles = {
        "critic_only": tuple(critic_only),
        "auxiliary_targets": pk.get("auxiliary_targets"),
        "candidates": pk.get("candidates"),
    }
    if isinstance(env_or_id, VecEnv):
        if (
            privileged_critic
            or reward_shaping
            or expected_rewards
            or auxiliary_targets
            or action_masks
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
            encoder=os.fspath(encoder),
            max_length=_max_length_of(space, max_length),
            privileged=PRIVILEGED_KEY in space.spaces,
            action_mask=ACTION_MASK_KEY in space.spaces,
            **roles,
        )
    else:
        pipeline = ObservationPipeline(
            encoder=os.fspath(encoder),
            max_length=max_length,
            # The one place that decides which agents observe the hidden features.
            privileged=privileged_critic or auxiliary_targets,
            action_mask=action_masks,
            **roles,
        )
        vec_env = make_vec_env(
            env_or_id,
            pipeline=pipeline,
            n_envs=n_envs,
            seed=seed,
            env_kwargs=env_kwargs,
            reward_scale=reward_scale,
            reward_shaping=reward_shaping,
            expected_rewards=expected_rewards,
        )
    checksum = encoder_checksum(os.fspath(encoder))
    fe_kwargs = {
        "encoder": os.fspath(encoder),
        "mode": encoder_mode,
        "pooling": pooling,
        "layers": None if encoder_layers is None else tuple(encoder_layers),
        "dtype": dtype,
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
    kwargs = dict(PPO_DEFAULTS)
    if encoder_mode != "frozen":
        kwargs["learning_rate"] = TRAINABLE_ENCODER_LEARNING_RATE
    kwargs["verbose"] = 0
    kwargs.update(ppo_kwargs)
    kwargs["n_steps"] = int(kwargs["n_steps"])
    model = PPO(
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
        "env_kwargs": dict(env_kwargs or {}),
        "encoder": os.fspath(encoder),
        "encoder_checksum": checksum,
        "encoder_mode": encoder_mode,
        "max_length": pipeline.max_length,
        "pooling": pooling,
        "encoder_layers": None if encoder_layers is None else list(encoder_layers),
        "dtype": dtype,
        "n_envs": int(vec_env.num_envs),
        "seed": seed,
        "reward_scale": float(reward_scale),
        "privileged_critic": bool(privileged_critic),
        "reward_shaping": bool(reward_shaping),
        "expected_rewards": bool(expected_rewards),
        "auxiliary_targets": bool(auxiliary_targets),
        "action_masks": bool(action_masks),
        "pipeline": pipeline.to_dict(),
    }
    return model


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
        "dtype": extractor.dtype_setting,
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


def load(
    path: str | os.PathLike,
    *,
    env: str | gym.Env | VecEnv | None = None,
    device: str | torch.device = "auto",
) -> PPO:
    """Load a text agent saved with ``model.save(path)``.

    The encoder is loaded again by name; in frozen mode its checksum is compared with the one
    recorded at training time (:class:`rlagent.encoders.EncoderChecksumError` on a mismatch).

    Args:
        path: The ``.zip`` file.
        env: Optional env to attach: an env id (built with the saved ``env_kwargs``), a raw
            ``gymnasium.Env`` (both through the model's observation pipeline) or a tokenized
            ``VecEnv``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...

    Returns:
        The ``PPO`` model, ``model.rlagent_spec`` restored.
    """
    model = PPO.load(os.fspath(path), device=resolve_device(device))
    if env is None:
        return model
    if isinstance(env, VecEnv):
        vec = env
    else:
        spec = spec_of(model)
        same_env = isinstance(env, str) and env == spec.get("env_id")
        vec = make_vec_env(
            env,
            pipeline=pipeline_of(model),
            n_envs=1,
            env_kwargs=spec.get("env_kwargs") if same_env else None,
        )
    if vec.num_envs != model.n_envs:
        # set_env cannot change the number of envs; loading with the env rebuilds the buffers.
        model = PPO.load(os.fspath(path), env=vec, device=resolve_device(device))
        return model
    model.set_env(vec)
    return model
