"""Refit an agent's belief probe to what logged feedback revealed about the hidden state.

An agent built with an auxiliary bottleneck (:class:`rlagent.agents.AuxiliaryBottleneck`: the
bundled customer-service config) acts only on a linear probe's beliefs about hidden features
(the customer's group, mood...), which the simulator taught it. Its actor never moves the probe,
so behaviour cloning or AWR on logs cannot teach it to read text it misreads. Logged feedback
can: an env that declares ``feedback_targets(action, reward)`` (the customer-service env: an
accepted resolution says which group the request was, a rejected one which it was not) turns
each logged decision into partial labels of the probe's targets, and :func:`fit_probe` fits the
probe's weights of the labelled targets to them (binary cross-entropy on the labelled entries
only; the others are untouched).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rlagent.agents.demonstrations import Demonstrations

__all__ = [
    "ProbeFeedbackError",
    "env_feedback_targets",
    "feedback_labels",
    "fit_probe",
    "has_probe",
    "probe_scores",
]

_BATCH = 256
NO_PROBE = (
    "This model acts on its features directly, not through a belief probe (auxiliary "
    "bottleneck), so there is no probe to refit; learn without probe_feedback "
    "(--probe-feedback)."
)


class ProbeFeedbackError(ValueError):
    """The probe cannot be refitted from feedback: no probe, no labels, or a bad setting."""


def has_probe(policy: nn.Module) -> bool:
    """Whether ``policy`` acts through an auxiliary bottleneck probe."""
    extractor = getattr(policy, "mlp_extractor", None)
    return callable(getattr(extractor, "predict", None)) and hasattr(extractor, "head")


def feedback_labels(
    actions: np.ndarray,
    rewards: np.ndarray,
    targets: Callable[[int, float], dict[int, float]],
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per decision, the labels ``targets(action, reward)`` gives: ``(labels, mask)``."""
    labels = np.zeros((len(actions), n), dtype=np.float32)
    mask = np.zeros((len(actions), n), dtype=bool)
    for i, (action, reward) in enumerate(zip(actions, rewards, strict=True)):
        for index, value in targets(int(action), float(reward)).items():
            if not 0 <= int(index) < n:
                raise ProbeFeedbackError(
                    f"feedback_targets gave target {index} for a probe of {n} targets; return "
                    "indices of the env's privileged_features()."
                )
            labels[i, int(index)] = float(value)
            mask[i, int(index)] = True
    return labels, mask


@torch.no_grad()
def _features(policy: nn.Module, demonstrations: Demonstrations) -> torch.Tensor:
    training = policy.training
    policy.set_training_mode(False)
    parts = []
    for index in demonstrations.minibatches(_BATCH):
        observations, _, _ = demonstrations.batch(index, policy.device)
        features = policy.extract_features(observations)
        parts.append(features[0] if isinstance(features, tuple) else features)
    policy.set_training_mode(training)
    return torch.cat(parts).float()


def fit_probe(
    policy: nn.Module,
    demonstrations: Demonstrations,
    labels: np.ndarray,
    mask: np.ndarray,
    *,
    epochs: int = 50,
    learning_rate: float = 3e-3,
    anchor: float = 0.0,
    validation: tuple[Demonstrations, np.ndarray, np.ndarray] | None = None,
    patience: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Fit the probe's head to the labelled entries (masked binary cross-entropy, Adam).

    Args:
        policy: A policy with an auxiliary bottleneck (:func:`has_probe`).
        demonstrations: The logged decisions (their observations are read).
        labels: ``[N, n_targets]`` labels in ``[0, 1]``.
        mask: ``[N, n_targets]`` which labels are known.
        epochs: Most passes over the labelled decisions.
        learning_rate: Adam's learning rate.
        anchor: Weight of ``||W - W_0||^2``, the squared distance of the head's weights from
            where they started (0: none): keeps what the probe read before, on wording the
            logs do not hold.
        validation: ``(decisions, labels, mask)`` held out: after each pass their masked
            loss is measured, the head keeps its best pass, and fitting stops after
            ``patience`` passes without improvement.
        patience: Passes without a better validation loss before stopping.
        seed: Seed of the minibatch shuffles.

    Returns:
        ``labelled`` (decisions with a label), ``loss_before`` and ``loss_after`` (masked
        binary cross-entropy), ``accuracy_before`` and ``accuracy_after`` (share of labelled
        entries on the right side of 0.5), ``epochs`` (passes kept: the best on validation).

    Raises:
        ProbeFeedbackError: The policy has no probe, or no decision is labelled.
    """
    if not has_probe(policy):
        raise ProbeFeedbackError(NO_PROBE)
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    if not len(rows):
        raise ProbeFeedbackError(
            "No logged decision's feedback labels the probe (e.g. no resolution with a reward "
            "in a customer-service log); learn without probe_feedback."
        )
    extractor = policy.mlp_extractor
    features = _features(policy, demonstrations)[torch.as_tensor(rows)]
    target = torch.as_tensor(np.asarray(labels)[rows], dtype=torch.float32, device=features.device)
    known = torch.as_tensor(np.asarray(mask)[rows], dtype=torch.float32, device=features.device)
    head = extractor.head
    optimizer = torch.optim.Adam(head.parameters(), lr=float(learning_rate))
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    loss_before, accuracy_before = _scores(extractor, features, target, known)
    start_weights = [p.detach().clone() for p in head.parameters()]
    held = None
    if validation is not None:
        held = _labelled(policy, *validation)
    best = (_held_loss(extractor, held), [p.detach().clone() for p in head.parameters()], 0)
    rng = np.random.default_rng(seed)
    for epoch in range(1, int(epochs) + 1):
        for start in range(0, len(rows), _BATCH):
            batch = torch.as_tensor(rng.permutation(len(rows))[start : start + _BATCH])
            logits = extractor.predict(features[batch])
            weight = known[batch]
            loss = (loss_fn(logits, target[batch]) * weight).sum() / weight.sum().clamp(min=1.0)
            if anchor > 0:
                pairs = zip(head.parameters(), start_weights, strict=True)
                drift = sum(((p - p0) ** 2).sum() for p, p0 in pairs)
                loss = loss + float(anchor) * drift
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if held is not None:
            current = _held_loss(extractor, held)
            if current < best[0]:
                best = (current, [p.detach().clone() for p in head.parameters()], epoch)
            elif epoch - best[2] >= int(patience):
                break
    kept = int(epochs)
    if held is not None:
        with torch.no_grad():
            for p, value in zip(head.parameters(), best[1], strict=True):
                p.copy_(value)
        kept = best[2]
    loss_after, accuracy_after = _scores(extractor, features, target, known)
    return {
        "labelled": float(len(rows)),
        "loss_before": loss_before,
        "loss_after": loss_after,
        "accuracy_before": accuracy_before,
        "accuracy_after": accuracy_after,
        "epochs": float(kept),
    }


def _labelled(
    policy: nn.Module, demonstrations: Demonstrations, labels: np.ndarray, mask: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    if not len(rows):
        return None
    features = _features(policy, demonstrations)[torch.as_tensor(rows)]
    target = torch.as_tensor(np.asarray(labels)[rows], dtype=torch.float32, device=features.device)
    known = torch.as_tensor(np.asarray(mask)[rows], dtype=torch.float32, device=features.device)
    return features, target, known


def _held_loss(extractor: Any, held: Any) -> float:
    if held is None:
        return float("inf")
    return _scores(extractor, *held)[0]


@torch.no_grad()
def _scores(
    extractor: Any, features: torch.Tensor, target: torch.Tensor, known: torch.Tensor
) -> tuple[float, float]:
    logits = extractor.predict(features)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    right = ((logits > 0).float() == (target > 0.5).float()).float()
    total = known.sum().clamp(min=1.0)
    return float((loss * known).sum() / total), float((right * known).sum() / total)


def probe_scores(
    policy: nn.Module, demonstrations: Demonstrations, labels: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """``labelled``, ``loss`` and ``accuracy`` of the probe on the labelled entries."""
    if not has_probe(policy):
        raise ProbeFeedbackError(NO_PROBE)
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    if not len(rows):
        return {"labelled": 0.0, "loss": 0.0, "accuracy": 0.0}
    features = _features(policy, demonstrations)[torch.as_tensor(rows)]
    target = torch.as_tensor(np.asarray(labels)[rows], dtype=torch.float32, device=features.device)
    known = torch.as_tensor(np.asarray(mask)[rows], dtype=torch.float32, device=features.device)
    loss, accuracy = _scores(policy.mlp_extractor, features, target, known)
    return {"labelled": float(len(rows)), "loss": loss, "accuracy": accuracy}


def env_feedback_targets(env: Any) -> Callable[[int, float], dict[int, float]]:
    """The env's ``feedback_targets``, or a clear error where it declares none."""
    targets = getattr(env.unwrapped, "feedback_targets", None)
    if not callable(targets):
        raise ProbeFeedbackError(
            f"{type(env.unwrapped).__name__} declares no feedback_targets(action, reward), so "
            "logged feedback says nothing about its hidden features; learn without "
            "probe_feedback, or give the env that method (see envs.customer_service)."
        )
    return targets
