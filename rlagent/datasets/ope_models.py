"""Value models for the direct method and doubly robust: fitted-Q evaluation on features.

:func:`fit_fqe` fits ``Q^pi``, the target policy's action values, from logged episodes alone by
fitted-Q evaluation (Le, Voloshin and Yue 2019), linear in state features: each iteration
regresses ``y_t = r_t + gamma * V(s_{t+1})`` on the features of ``(s_t, a_t)``, with ``V(s) =
sum_a pi(a|s) Q(s, a)`` from the previous iteration and no bootstrap after an episode's last
decision (the logged horizon ends there, as in the estimators). ``Q`` is a shared linear
value of the state plus one ridge-shrunk linear residual per action:

    ``Q(s, a) = x(s) . theta + x(s) . delta_a``,   ``x(s) = [standardised features, 1]``

The shared part is fitted to every decision; each action's residual only to the decisions that
took it, shrunk towards 0 (``action_ridge``), so an action the logger rarely or never took gets
(about) the shared state value rather than an arbitrary number. With one-hot features of a
finite state space and enough data this is exact tabular FQE; ``iterations`` defaults to the
longest episode, which for a finite horizon propagates every reward back to the start.

:func:`q_and_v` turns a fitted model into the ``q`` and ``v`` arrays of
:class:`~rlagent.datasets.ope_data.OPEData`; :func:`cross_fitted_q_and_v` does it with
``folds``-fold cross-fitting (each episode's values come from a model fitted on the other
folds), which keeps doubly robust's correction term from fitting its own noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlagent.datasets.ope_data import OPEError

__all__ = ["FQEConfig", "LinearQ", "cross_fitted_q_and_v", "fit_fqe", "q_and_v"]


@dataclass(frozen=True)
class FQEConfig:
    """Settings of :func:`fit_fqe`.

    Attributes:
        ridge: L2 penalty of the shared state value (on standardised features).
        action_ridge: L2 penalty of each action's residual: larger shrinks rarely taken
            actions harder towards the shared value.
        iterations: FQE iterations (``None``: the longest episode's length).
        folds: Cross-fitting folds for :func:`cross_fitted_q_and_v` (1: fit and predict on all
            episodes).
        max_features: :func:`cross_fitted_q_and_v` projects wider features onto this many
            seeded random Gaussian directions first (``None``: never). Each taken action
            keeps a ``[d + 1, d + 1]`` Gram matrix, so a slate policy's actor features (about
            4,000 wide for the recommendation model) over 100 ordered slates would need more
            than 12 GB.
    """

    ridge: float = 1.0
    action_ridge: float = 10.0
    iterations: int | None = None
    folds: int = 2
    max_features: int | None = 512


@dataclass(frozen=True, eq=False)
class LinearQ:
    """A fitted linear ``Q(s, a)`` (see the module docstring).

    Attributes:
        mean: ``[d]`` feature means of the fitting data.
        scale: ``[d]`` their standard deviations (1 for constant features).
        shared: ``[d + 1]`` the shared state-value weights (last: the bias).
        residual: ``[d + 1, A]`` each action's residual weights (0 for actions never taken).
    """

    mean: np.ndarray
    scale: np.ndarray
    shared: np.ndarray
    residual: np.ndarray

    @property
    def n_actions(self) -> int:
        """The number of actions ``A``."""
        return int(self.residual.shape[1])

    def q(self, features: np.ndarray) -> np.ndarray:
        """``[N, A]`` action values of ``N`` states' features ``[N, d]``."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.mean.size:
            raise OPEError(
                f"features have shape {features.shape}; expected [N, {self.mean.size}] like "
                "the features the model was fitted on."
            )
        x = _design(features, self.mean, self.scale)
        return (x @ self.shared)[:, None] + x @ self.residual


def _design(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``[N, d + 1]`` standardised features with a bias column."""
    x = (features - mean) / scale
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)


def _concat(name: str, arrays: Sequence[np.ndarray], ndim: int) -> np.ndarray:
    parts = [np.asarray(a) for a in arrays]
    for i, part in enumerate(parts):
        if part.ndim != ndim:
            raise OPEError(
                f"{name} of episode {i} has {part.ndim} dimensions; expected {ndim} (one row "
                "per decision)."
            )
    return np.concatenate(parts, axis=0)


def _check_episodes(
    features: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    rewards: Sequence[np.ndarray],
    target_distributions: Sequence[np.ndarray],
) -> list[int]:
    counts = {len(features), len(actions), len(rewards), len(target_distributions)}
    if len(counts) != 1:
        raise OPEError(
            f"Got {len(features)} episodes of features, {len(actions)} of actions, "
            f"{len(rewards)} of rewards and {len(target_distributions)} of target "
            "distributions; pass one array per episode for each."
        )
    if not features:
        raise OPEError("No episodes to fit a value model on.")
    lengths = []
    for i, (f, a, r, p) in enumerate(
        zip(features, actions, rewards, target_distributions, strict=True)
    ):
        sizes = {len(f), len(a), len(r), len(p)}
        if len(sizes) != 1:
            raise OPEError(
                f"Episode {i}: features, actions, rewards and target distributions have "
                f"{len(f)}, {len(a)}, {len(r)} and {len(p)} rows; expected one per decision."
            )
        lengths.append(len(r))
    return lengths


def _ridge_solve(gram: np.ndarray, rhs: np.ndarray, penalty: float) -> np.ndarray:
    eye = np.eye(gram.shape[-1])
    return np.linalg.solve(gram + penalty * eye, rhs[..., None])[..., 0]


def fit_fqe(
    features: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    rewards: Sequence[np.ndarray],
    target_distributions: Sequence[np.ndarray],
    *,
    gamma: float = 1.0,
    config: FQEConfig | None = None,
) -> LinearQ:
    """Fit the target policy's ``Q`` by linear fitted-Q evaluation (see the module docstring).

    Args:
        features: Per episode, ``[T, d]`` features of the state at each decision.
        actions: Per episode, ``[T]`` action indices taken (flat indices for slates).
        rewards: Per episode, ``[T]`` rewards.
        target_distributions: Per episode, ``[T, A]`` the target policy's distribution at each
            decision.
        gamma: The discount.
        config: Penalties and iterations (default :class:`FQEConfig`).

    Returns:
        The fitted model.

    Raises:
        OPEError: Episodes whose arrays disagree, no episodes, actions outside ``0..A-1``.
    """
    config = config or FQEConfig()
    lengths = _check_episodes(features, actions, rewards, target_distributions)
    feats = _concat("features", features, 2).astype(np.float64)
    acts = _concat("actions", actions, 1).astype(np.int64)
    rews = _concat("rewards", rewards, 1).astype(np.float64)
    pis = _concat("target distributions", target_distributions, 2).astype(np.float64)
    n_actions = pis.shape[1]
    if acts.size and (acts.min() < 0 or acts.max() >= n_actions):
        raise OPEError(
            f"actions range over {int(acts.min())}..{int(acts.max())} but the target "
            f"distributions have {n_actions} actions; pass flat action indices."
        )
    if acts.size == 0:
        d = feats.shape[1]
        return LinearQ(np.zeros(d), np.ones(d), np.zeros(d + 1), np.zeros((d + 1, n_actions)))
    mean = feats.mean(axis=0)
    scale = feats.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    x = _design(feats, mean, scale)
    d = x.shape[1]
    # Row j's next state is row j + 1 of the same episode, except after an episode's end.
    ends = np.cumsum(lengths) - 1
    has_next = np.ones(acts.size, dtype=bool)
    has_next[ends[np.asarray(lengths) > 0]] = False
    next_rows = np.flatnonzero(has_next) + 1
    taken, slot = np.unique(acts, return_inverse=True)
    rows_of = np.split(np.argsort(slot, kind="stable"), np.cumsum(np.bincount(slot))[:-1])
    shared_gram = x.T @ x
    action_grams = np.stack([x[rows].T @ x[rows] for rows in rows_of])
    shared = np.zeros(d)
    residual = np.zeros((d, n_actions))
    iterations = config.iterations if config.iterations is not None else max(lengths)
    for _ in range(max(1, iterations)):
        q_all = (x @ shared)[:, None] + x @ residual
        y = rews.copy()
        y[has_next] += gamma * (pis * q_all).sum(axis=1)[next_rows]
        shared = _ridge_solve(shared_gram, x.T @ y, config.ridge)
        errors = y - x @ shared
        rhs = np.zeros((taken.size, d))
        np.add.at(rhs, slot, x * errors[:, None])
        residual = np.zeros((d, n_actions))
        residual[:, taken] = _ridge_solve(action_grams, rhs, config.action_ridge).T
    return LinearQ(mean, scale, shared, residual)


def q_and_v(
    model: LinearQ,
    features: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    target_distributions: Sequence[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``Q(s_t, a_t)`` and ``V(s_t) = sum_a pi(a|s_t) Q(s_t, a)`` per episode.

    Args:
        model: A fitted model.
        features: Per episode, ``[T, d]`` state features.
        actions: Per episode, ``[T]`` action indices taken.
        target_distributions: Per episode, ``[T, A]`` the target policy's distributions.

    Returns:
        Per episode ``q`` ``[T]`` and ``v`` ``[T]`` (for :func:`rlagent.datasets.ope_data`).
    """
    lengths = [len(a) for a in actions]
    if sum(lengths) == 0:
        return [np.zeros(0) for _ in lengths], [np.zeros(0) for _ in lengths]
    acts = _concat("actions", actions, 1).astype(np.int64)
    q_all = model.q(_concat("features", features, 2))
    pis = _concat("target distributions", target_distributions, 2).astype(np.float64)
    if q_all.shape != pis.shape:
        raise OPEError(
            f"The model gives {q_all.shape[1]} action values but the target distributions have "
            f"{pis.shape[1]} actions; fit the model on the same action space."
        )
    splits = np.cumsum(lengths)[:-1]
    q_taken = q_all[np.arange(acts.size), acts]
    values = (pis * q_all).sum(axis=1)
    return list(np.split(q_taken, splits)), list(np.split(values, splits))


def _project(
    features: Sequence[np.ndarray], max_features: int | None, seed: int
) -> Sequence[np.ndarray]:
    """``features`` onto ``max_features`` seeded random directions when they are wider."""
    widths = {np.shape(f)[1] for f in features if np.ndim(f) == 2}
    if max_features is None or len(widths) != 1 or (d := widths.pop()) <= max_features:
        return features
    rng = np.random.default_rng([seed, d, max_features])
    directions = rng.standard_normal((d, max_features)) / np.sqrt(max_features)
    return [np.asarray(f, dtype=np.float64) @ directions for f in features]


def cross_fitted_q_and_v(
    features: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    rewards: Sequence[np.ndarray],
    target_distributions: Sequence[np.ndarray],
    *,
    gamma: float = 1.0,
    config: FQEConfig | None = None,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:func:`q_and_v` of models fitted on the other folds (``config.folds``-fold cross-fitting).

    The episodes are split into folds at random (``seed``); each fold's ``q`` and ``v`` come
    from a model fitted on the remaining folds. With one fold, or fewer episodes than folds,
    one model is fitted on every episode and predicts them all.

    Args:
        features: Per episode, ``[T, d]`` state features.
        actions: Per episode, ``[T]`` action indices taken.
        rewards: Per episode, ``[T]`` rewards.
        target_distributions: Per episode, ``[T, A]`` the target policy's distributions.
        gamma: The discount.
        config: FQE settings, ``folds`` among them.
        seed: Seed of the split into folds.

    Returns:
        Per episode ``q`` ``[T]`` and ``v`` ``[T]``.

    Raises:
        OPEError: What :func:`fit_fqe` refuses, or ``folds < 1``.
    """
    config = config or FQEConfig()
    if config.folds < 1:
        raise OPEError(f"folds={config.folds}; expected at least 1 (1: no cross-fitting).")
    features = _project(features, config.max_features, seed)
    n = len(features)
    if config.folds == 1 or n < config.folds:
        model = fit_fqe(
            features, actions, rewards, target_distributions, gamma=gamma, config=config
        )
        return q_and_v(model, features, actions, target_distributions)
    fold_of = np.random.default_rng(seed).permutation(n) % config.folds
    qs: list[np.ndarray] = [np.zeros(0)] * n
    vs: list[np.ndarray] = [np.zeros(0)] * n
    for fold in range(config.folds):
        train = np.flatnonzero(fold_of != fold)
        held = np.flatnonzero(fold_of == fold)
        model = fit_fqe(
            [features[i] for i in train],
            [actions[i] for i in train],
            [rewards[i] for i in train],
            [target_distributions[i] for i in train],
            gamma=gamma,
            config=config,
        )
        q_held, v_held = q_and_v(
            model,
            [features[i] for i in held],
            [actions[i] for i in held],
            [target_distributions[i] for i in held],
        )
        for i, q, v in zip(held, q_held, v_held, strict=True):
            qs[i], vs[i] = q, v
    return qs, vs
