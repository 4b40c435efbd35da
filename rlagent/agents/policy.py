"""The actor-critic policy of a text agent: SB3's multi-input policy, with optional heads.

:class:`TextActorCriticPolicy` reads observations through a
:class:`rlagent.encoders.TextFeaturesExtractor` and never re-initialises its pretrained encoder.
Its optional parts each live in their own module: the candidate-scoring head
(:mod:`rlagent.agents.candidates`, :mod:`rlagent.agents.slate`), critic-only inputs
(:mod:`rlagent.agents.asymmetric`), the auxiliary head and bottleneck actor
(:mod:`rlagent.agents.auxiliary`) and the action mask (below). The policy finds where each
observation entry sits in the features through the extractor's public
:attr:`~rlagent.encoders.TextFeaturesExtractor.layout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, MultiInputActorCriticPolicy
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
from rlagent.encoders.extractor import FeaturesLayout, TextFeaturesExtractor, is_pretrained_module
from rlagent.wrappers import ACTION_MASK_KEY, ActionMaskError

__all__ = ["TextActorCriticPolicy"]

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
            layout = self._features_layout(
                CriticOnlyError, "policy_kwargs['critic_only'] and ['auxiliary_targets'] need"
            )
            offset = layout.numeric_offset
            columns = critic_only_columns(layout.numeric, offset, critic_only)
            try:
                hidden_columns = critic_only_columns(layout.numeric, offset, hidden)
            except CriticOnlyError:
                raise AuxiliaryTargetsError(
                    f"policy_kwargs['auxiliary_targets'] = {key!r} is not a numeric "
                    "observation entry; make_ppo(..., auxiliary_targets=True) adds the env's "
                    "privileged features as 'privileged'."
                ) from None
            self.mlp_extractor = ActorInputMask(
                self.mlp_extractor, layout.features_dim, columns, hidden_columns
            )
        if key is None:
            if self.auxiliary_bottleneck:
                raise AuxiliaryTargetsError(
                    "policy_kwargs['auxiliary_bottleneck'] needs auxiliary targets for the actor "
                    "to read; build with make_ppo(..., auxiliary_targets=True) (or "
                    "auxiliary.coef > 0 in a training config)."
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
        # ``layout`` and ``offset`` are set).
        masked = self.mlp_extractor
        numeric = [c for c in range(offset, layout.features_dim) if masked.keep[c] > 0]
        pi_arch = self.net_arch.get("pi", []) if isinstance(self.net_arch, dict) else self.net_arch
        masked.base.policy_net = nn.Identity()  # the bottleneck's own MLP acts instead
        self.mlp_extractor = AuxiliaryBottleneck(
            masked,
            layout.features_dim,
            masked.keep,
            numeric,
            size,
            list(pi_arch),
            self.activation_fn,
            belief_noise=self.belief_noise,
        )

    def _features_layout(self, error: type[Exception], what: str) -> FeaturesLayout:
        """The text extractor's layout of the features, or ``error`` when there is none."""
        extractor = self.features_extractor
        if not isinstance(extractor, TextFeaturesExtractor):
            raise error(
                f"{what} the text features extractor (TextFeaturesExtractor), got "
                f"{type(extractor).__name__}."
            )
        return extractor.layout

    def auxiliary_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The auxiliary predictions' logits from a batch of features.

        Raises:
            AuxiliaryTargetsError: When the policy was built without auxiliary targets.
        """
        if self.auxiliary_targets is None:
            raise AuxiliaryTargetsError(
                "The policy has no auxiliary head; build it with make_ppo(..., "
                "auxiliary_targets=True) (or auxiliary.coef > 0 in a training config)."
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
        features = self._features_layout(CandidateLayoutError, "policy_kwargs['candidates'] needs")
        layout = candidate_layout(
            self.observation_space,
            self.action_space,
            list(features.text),
            list(features.numeric),
            features.embedding_dim,
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
