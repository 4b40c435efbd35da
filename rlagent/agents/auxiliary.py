"""Auxiliary targets: the actor learns to predict hidden state it never reads.

The env's hidden ``privileged_features()`` can travel in the rollout buffer beside every
observation, as the ``"privileged"`` entry a privileged critic reads (see
:mod:`rlagent.agents.asymmetric`). PPO teaches the actor's layers only through the advantage
of the action taken, a weak signal for *what* a piece of text says (which of eleven groups a
paraphrase belongs to, how upset its wording is). An auxiliary head on the actor's latent
vector predicts those hidden features from the observation alone, and :class:`AuxiliaryLoss`
trains it (and through it the actor's layers) by supervised steps on each rollout, so the
actor's features come to encode the hidden state as well as the text allows. The actor still
never reads the features: the prediction is made from the observation, with the privileged
columns zeroed (and the critic reads them only with ``privileged_critic``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn
from torch.nn import functional as F

__all__ = [
    "AuxiliaryBottleneck",
    "AuxiliaryLoss",
    "AuxiliaryTargetsError",
    "auxiliary_loss",
    "refresh_log_probs",
]

# Belief noise: each logit gets sum_k sin(<w_k, features>) * sqrt(2 / K) (unit variance), with
# K random directions w_k of this scale, so the phases spread over many periods between any
# two observations and the perturbation behaves like independent noise per observation.
_NOISE_WAVES = 4
_NOISE_FREQUENCY = 100.0
_NOISE_HASH_SEED = 0  # the directions are part of the hash, not a random draw of the run


class AuxiliaryTargetsError(ValueError):
    """Auxiliary targets that the policy cannot predict or must not read."""


def auxiliary_loss(policy: Any, observations: dict[str, torch.Tensor]) -> torch.Tensor:
    """Binary cross-entropy of the policy's auxiliary predictions against their targets.

    Args:
        policy: A :class:`rlagent.agents.TextActorCriticPolicy` built with
            ``auxiliary_targets`` (otherwise its ``auxiliary_logits`` raises
            :class:`AuxiliaryTargetsError`).
        observations: A batch of (tokenized) observations holding the target entry.

    Returns:
        The mean loss over the batch and the target columns (targets lie in [0, 1]).
    """
    features = policy.extract_features(observations, policy.pi_features_extractor)
    if isinstance(features, tuple):  # separate actor and critic extractors
        features = features[0]
    logits = policy.auxiliary_logits(features)
    target = observations[policy.auxiliary_targets].reshape(logits.shape).float()
    return F.binary_cross_entropy_with_logits(logits, target.clamp(0.0, 1.0))


class AuxiliaryLoss(BaseCallback):
    """Supervised steps on the auxiliary targets after each rollout, before PPO's update.

    Each step minimises ``coef * auxiliary_loss`` with the policy's own optimizer (and PPO's
    gradient clipping) over minibatches of the rollout just collected. Those steps move the
    actor, so the buffer's log-probabilities are then recomputed: PPO's clipped ratio
    measures its own update from the policy as the auxiliary steps left it.

    A :class:`rlagent.agents.TextPPO` whose settings have ``auxiliary.coef > 0`` runs it in
    every ``learn`` call; otherwise pass it to ``model.learn(callback=...)``. Logs
    ``train/auxiliary_loss``.

    Args:
        coef: Weight of the auxiliary loss (its steps' gradient scale).
        epochs: Passes over the rollout per update.
        warmup_epochs: Passes over the first rollout of a model that has not trained yet
            (when more than ``epochs``): the predictions are worth reading before PPO's first
            update, which matters for an :class:`AuxiliaryBottleneck` actor that reads nothing
            else.
        learning_rate: Learning rate of a separate Adam optimizer for these steps; ``None``
            uses the policy's own optimizer (and PPO's learning rate). A linear prediction head
            on frozen embeddings fits in a few hundred steps at 3e-3, ten times as many at
            PPO's usual 3e-4. Its state is not part of the saved model: see
            :meth:`optimizer_state`.
    """

    def __init__(
        self,
        coef: float = 1.0,
        *,
        epochs: int = 1,
        warmup_epochs: int = 0,
        learning_rate: float | None = None,
    ) -> None:
        super().__init__()
        if (
            not coef > 0
            or epochs < 1
            or warmup_epochs < 0
            or (learning_rate is not None and not learning_rate > 0)
        ):
            raise AuxiliaryTargetsError(
                f"AuxiliaryLoss(coef={coef!r}, epochs={epochs!r}, "
                f"warmup_epochs={warmup_epochs!r}, learning_rate={learning_rate!r}): expected "
                "coef > 0, epochs >= 1, warmup_epochs >= 0 and learning_rate > 0 (or None)."
            )
        self.coef = float(coef)
        self.epochs = int(epochs)
        self.warmup_epochs = int(warmup_epochs)
        self.learning_rate = None if learning_rate is None else float(learning_rate)
        self._fresh = False
        self._optimizer: torch.optim.Optimizer | None = None  # set when training starts
        self._pending_state: dict[str, Any] | None = None

    def optimizer_state(self) -> dict[str, Any] | None:
        """A CPU copy of the separate optimizer's ``state_dict()`` (``None`` without one).

        The policy's own optimizer is saved with the model; this one is not, so a trainer
        that checkpoints a run keeps this beside it (:func:`rlagent.training.train` does).
        """
        if self.learning_rate is None:
            return None
        if self._optimizer is None:
            return self._pending_state
        return _to_cpu(self._optimizer.state_dict())

    def load_optimizer_state(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`optimizer_state` (now, or when training starts); ``None`` is a no-op."""
        if state is None or self.learning_rate is None:
            return
        if self._optimizer is None:
            self._pending_state = state
        else:
            self._optimizer.load_state_dict(state)

    def _on_training_start(self) -> None:
        self._fresh = self.model.num_timesteps == 0
        policy = self.model.policy
        if self.learning_rate is None:
            self._optimizer = policy.optimizer
            return
        params = [p for p in policy.parameters() if p.requires_grad]
        self._optimizer = torch.optim.Adam(params, lr=self.learning_rate)
        if self._pending_state is not None:
            self._optimizer.load_state_dict(self._pending_state)
            self._pending_state = None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model = self.model
        policy = model.policy
        buffer = model.rollout_buffer
        policy.set_training_mode(True)
        losses = []
        epochs = max(self.epochs, self.warmup_epochs) if self._fresh else self.epochs
        optimizer = self._optimizer
        self._fresh = False
        for _ in range(epochs):
            for batch in buffer.get(model.batch_size):
                loss = self.coef * auxiliary_loss(policy, batch.observations)
                policy.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
                optimizer.step()
                losses.append(loss.item() / self.coef)
        self._refresh_log_probs()
        self.logger.record("train/auxiliary_loss", float(np.mean(losses)))

    def _refresh_log_probs(self) -> None:
        refresh_log_probs(self.model)


@torch.no_grad()
def refresh_log_probs(model: Any) -> None:
    """Recompute the rollout buffer's log-probabilities under the policy as it is now.

    A callback that moves the actor between a rollout and PPO's update (supervised steps such
    as :class:`AuxiliaryLoss` or :class:`rlagent.agents.BehaviourCloning`) calls this, so PPO's
    clipped ratio measures its own update from the policy those steps left.

    Args:
        model: The PPO model whose ``rollout_buffer`` is full (flattened here if no one has
            read it yet).
    """
    buffer = model.rollout_buffer
    policy = model.policy
    if not buffer.generator_ready:
        next(buffer.get(model.batch_size))  # flattens the buffer, as PPO's update reads it
    policy.set_training_mode(False)
    n = buffer.buffer_size * buffer.n_envs
    flat = buffer.log_probs.reshape(-1)
    for start in range(0, n, model.batch_size):
        index = np.arange(start, min(start + model.batch_size, n))
        batch = buffer._get_samples(index)
        actions = batch.actions
        if isinstance(model.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        _, log_prob, _ = policy.evaluate_actions(batch.observations, actions)
        flat[index] = log_prob.cpu().numpy()


def _to_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (through dicts, lists and tuples) copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(item) for item in value)
    return value


def belief_noise_spec(value: Any, n_targets: int | None = None) -> float | tuple[float, ...]:
    """Check a ``belief_noise`` setting: one standard deviation, or one per target.

    Args:
        value: A number, or a sequence of numbers (one per auxiliary target).
        n_targets: Number of targets a sequence must match; ``None`` skips that check.

    Returns:
        The setting as a float or a tuple of floats.

    Raises:
        AuxiliaryTargetsError: On a negative or non-numeric value, or a sequence of the wrong
            length.
    """
    fix = (
        "expected a standard deviation >= 0 in logits (0 turns the training perturbation "
        "off), or a list of them with one per auxiliary target"
    )
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        values, single = [value], True
    else:
        values, single = list(value), False
    try:
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        floats = ()
    if not floats or not all(v >= 0 for v in floats):
        raise AuxiliaryTargetsError(f"policy_kwargs['belief_noise'] = {value!r}: {fix}.")
    if single:
        return floats[0]
    if n_targets is not None and len(floats) != n_targets:
        raise AuxiliaryTargetsError(
            f"policy_kwargs['belief_noise'] has {len(floats)} values for {n_targets} auxiliary "
            f"targets: {fix} (the targets are the entries of the observation's auxiliary "
            "targets, e.g. the env's privileged_features(), in order)."
        )
    return floats


def belief_noise_is_on(value: float | tuple[float, ...]) -> bool:
    """Whether a :func:`belief_noise_spec` setting perturbs anything."""
    return any(v > 0 for v in value) if isinstance(value, tuple) else value > 0


class AuxiliaryBottleneck(nn.Module):
    """An actor that reads its predictions of the hidden state instead of the text.

    A linear ``head`` predicts the auxiliary targets from the features (the text embeddings
    and the numeric entries, with the columns the actor must not read zeroed): a linear probe
    on the frozen embeddings, trained only by :class:`AuxiliaryLoss`. The actor's MLP reads
    the head's probabilities (detached: PPO does not move the probe) and the numeric entries
    the actor may read, nothing else. Its decisions then rest on a few calibrated numbers
    ("how likely is this customer angry") that mean the same on unseen wording as on the
    training wording, where an MLP over thousands of embedding columns can fit cues of the
    training phrasings that do not carry over. The critic is the wrapped extractor's.

    On wording it was fitted to the probe is sure of itself; on unseen wording it is often
    unsure (a vague request it reads as 70% specific), and an actor that only ever read sure
    predictions has not learnt what to do then. ``belief_noise`` perturbs the logits the
    actor reads during training, so that it meets unsure predictions whose truth the env
    knows, and learns to ask or apologise when unsure instead of acting on a guess. The
    perturbation has standard deviation ``belief_noise`` (in logits; a sequence gives each
    target its own, in the order of the targets) and is a fixed function of the observation,
    so PPO's rollout and update see the same one and its probability ratios stay exact. It is
    on only inside :meth:`noisy` (the policy's ``forward`` and ``evaluate_actions``, the
    passes that collect rollouts and train); ``predict``, evaluation and planning read the
    probe as it is.

    Args:
        base: The (masked) MLP extractor; its critic path is used as is.
        features_dim: Width of the features vector.
        keep: ``[features_dim]`` 0/1 mask of the columns the actor may read.
        numeric_columns: Columns of numeric entries the actor reads directly.
        n_targets: Number of auxiliary targets.
        net_arch: Hidden layer sizes of the actor's MLP.
        activation_fn: Activation class of the actor's MLP.
        belief_noise: Standard deviation of the training perturbation of the logits the actor
            reads (0: none), one for all targets or one per target.
    """

    def __init__(
        self,
        base: nn.Module,
        features_dim: int,
        keep: torch.Tensor,
        numeric_columns: list[int],
        n_targets: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        belief_noise: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        self.base = base
        self.belief_noise = belief_noise_spec(belief_noise, int(n_targets))
        self._noisy = False
        if self.has_belief_noise:  # a fixed hash of the observation, the same in every model
            generator = torch.Generator().manual_seed(_NOISE_HASH_SEED)
            shape = (_NOISE_WAVES, int(n_targets), int(features_dim))
            directions = torch.randn(shape, generator=generator) * _NOISE_FREQUENCY
            self.register_buffer("noise_directions", directions, persistent=False)
            if isinstance(self.belief_noise, tuple):
                scales = torch.tensor(self.belief_noise) * (2.0 / _NOISE_WAVES) ** 0.5
                self.register_buffer("noise_scales", scales, persistent=False)
        self.head = nn.Linear(int(features_dim), int(n_targets))
        sizes = [int(n) for n in net_arch]
        width = int(n_targets) + len(numeric_columns)
        self.actor = nn.Sequential(*create_mlp(width, -1, sizes, activation_fn))
        self.latent_dim_pi = sizes[-1] if sizes else width
        self.latent_dim_vf = base.latent_dim_vf
        self.register_buffer("keep", keep.detach().clone().float(), persistent=False)
        self.register_buffer(
            "numeric_columns", torch.as_tensor(numeric_columns, dtype=torch.long), persistent=False
        )

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The head's logits ``[B, n_targets]`` from the actor-readable features."""
        return self.head(features * self.keep)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(latent_pi, latent_vf)``."""
        return self.forward_actor(features), self.forward_critic(features)

    @property
    def has_belief_noise(self) -> bool:
        """Whether training passes perturb the beliefs at all."""
        return belief_noise_is_on(self.belief_noise)

    @contextmanager
    def noisy(self) -> Iterator[None]:
        """Perturb the actor's beliefs inside this block (when ``belief_noise > 0``)."""
        previous, self._noisy = self._noisy, True
        try:
            yield
        finally:
            self._noisy = previous

    def belief_perturbation(self, features: torch.Tensor) -> torch.Tensor:
        """The ``[B, n_targets]`` logit perturbation of each observation (zeros without noise)."""
        if not self.has_belief_noise:
            return features.new_zeros(features.shape[0], self.head.out_features)
        phases = torch.einsum("bf,ktf->bkt", features * self.keep, self.noise_directions)
        if isinstance(self.belief_noise, tuple):
            return torch.sin(phases).sum(dim=1) * self.noise_scales
        scale = self.belief_noise * (2.0 / _NOISE_WAVES) ** 0.5
        return torch.sin(phases).sum(dim=1) * scale

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """The actor's latent from the predicted targets and the readable numeric entries."""
        logits = self.predict(features).detach()
        if self._noisy and self.has_belief_noise:
            logits = logits + self.belief_perturbation(features)
        beliefs = torch.sigmoid(logits)
        numeric = features.index_select(1, self.numeric_columns)
        return self.actor(torch.cat([beliefs, numeric], dim=1))

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """The wrapped extractor's critic latent."""
        return self.base.forward_critic(features)
