"""Logged episodes as the arrays off-policy estimators read, and the support check.

:class:`OPEData` holds ``n`` logged episodes padded to a common horizon ``H`` (the longest
episode): per decision the reward, the behaviour policy's probability of the action taken
(its propensity), the target policy's probability of the same action and, for the direct
method and doubly robust, a value model's ``Q(s_t, a_t)`` and ``V(s_t) = sum_a pi(a|s_t)
Q(s_t, a)``. Build it from one array per episode with :func:`ope_data`, or directly from padded
``[n, H]`` arrays and the episode lengths (what the exact-answer tests do).

After an episode ends its padding is an absorbing state: reward 0, both probabilities 1 (so
the importance weight stays the trajectory's weight), ``Q`` and ``V`` 0. Whatever the padding
held is overwritten.

:func:`check_support` measures how much of the target policy's probability falls on actions
the logger (almost) never takes, which importance weights cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["OPEData", "OPEError", "SupportReport", "check_support", "ope_data"]

#: How far a probability may stray outside ``[0, 1]`` (float32 logs) before it is refused.
_PROBABILITY_TOLERANCE = 1e-6


class OPEError(ValueError):
    """Logged data or settings that off-policy evaluation cannot use."""


def _first_bad(mask: np.ndarray) -> tuple[int, int]:
    episode, step = np.argwhere(mask)[0]
    return int(episode), int(step)


@dataclass(frozen=True, eq=False)
class OPEData:
    """``n`` logged episodes as padded arrays (see the module docstring).

    Attributes:
        rewards: ``[n, H]`` rewards (0 after an episode's end).
        behaviour: ``[n, H]`` the behaviour policy's probability of each action taken.
        target: ``[n, H]`` the target policy's probability of the same action.
        lengths: ``[n]`` the number of decisions of each episode (``<= H``).
        q: ``[n, H]`` a value model's ``Q(s_t, a_t)`` for the target policy, or ``None``.
        v: ``[n, H]`` its ``V(s_t) = sum_a pi(a|s_t) Q(s_t, a)``, or ``None``.

    Raises:
        OPEError: No episodes, shapes that disagree, probabilities outside ``[0, 1]``, a
            behaviour propensity of 0 for a taken action, non-finite rewards or values, or
            ``q`` without ``v`` (or the reverse).
    """

    rewards: np.ndarray
    behaviour: np.ndarray
    target: np.ndarray
    lengths: np.ndarray
    q: np.ndarray | None = None
    v: np.ndarray | None = None

    def __post_init__(self) -> None:
        lengths = np.asarray(self.lengths)
        if lengths.ndim != 1 or lengths.size == 0:
            raise OPEError(
                "No episodes: off-policy evaluation needs at least one logged episode; check "
                "that the dataset holds decisions."
            )
        if not np.issubdtype(lengths.dtype, np.integer) or lengths.min() < 0:
            raise OPEError(f"lengths must be non-negative integers, got {lengths.tolist()[:5]}.")
        n = lengths.size
        arrays = {"rewards": self.rewards, "behaviour": self.behaviour, "target": self.target}
        if (self.q is None) != (self.v is None):
            raise OPEError(
                "Pass both q (Q(s_t, a_t)) and v (V(s_t) under the target policy), or neither."
            )
        if self.q is not None:
            arrays.update(q=self.q, v=self.v)
        converted = {name: np.array(value, dtype=np.float64) for name, value in arrays.items()}
        shape = converted["rewards"].shape
        for name, value in converted.items():
            if value.ndim != 2 or value.shape[0] != n or value.shape != shape:
                raise OPEError(
                    f"{name} has shape {value.shape}; expected [episodes, horizon] = "
                    f"[{n}, {shape[1] if len(shape) == 2 else 'H'}] like rewards, one row per "
                    "episode (lengths has one entry per episode)."
                )
        horizon = shape[1]
        if lengths.max() > horizon:
            raise OPEError(
                f"An episode is {int(lengths.max())} decisions long but the arrays hold "
                f"{horizon} steps; pad every array to the longest episode."
            )
        valid = np.arange(horizon)[None, :] < lengths[:, None]
        for name in ("behaviour", "target"):
            value = converted[name]
            bad = valid & ~(
                (value >= -_PROBABILITY_TOLERANCE) & (value <= 1 + _PROBABILITY_TOLERANCE)
            )
            if bad.any():
                i, t = _first_bad(bad)
                got = float(value[i, t])
                raise OPEError(
                    f"Episode {i}, step {t}: the {name} probability {got!r} is outside [0, 1]; "
                    "pass probabilities, not log-probabilities or scores."
                )
            converted[name] = np.clip(value, 0.0, 1.0)
        zero = valid & (converted["behaviour"] <= 0.0)
        if zero.any():
            i, t = _first_bad(zero)
            raise OPEError(
                f"Episode {i}, step {t}: the behaviour propensity of the taken action is 0, so "
                "the logger could not have taken it; the log's propensities are wrong (a "
                "deterministic logger records 1.0 for the action it chose)."
            )
        for name in ("rewards", "q", "v"):
            if name in converted:
                bad = valid & ~np.isfinite(converted[name])
                if bad.any():
                    i, t = _first_bad(bad)
                    got = float(converted[name][i, t])
                    raise OPEError(
                        f"Episode {i}, step {t}: {name} is {got!r}, not a finite number."
                    )
        padding = {"rewards": 0.0, "behaviour": 1.0, "target": 1.0, "q": 0.0, "v": 0.0}
        for name, value in converted.items():
            value[~valid] = padding[name]
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        lengths = lengths.astype(np.int64)
        lengths.setflags(write=False)
        object.__setattr__(self, "lengths", lengths)

    @property
    def n_episodes(self) -> int:
        """The number of episodes ``n``."""
        return int(self.lengths.size)

    @property
    def horizon(self) -> int:
        """The padded horizon ``H``."""
        return int(self.rewards.shape[1])

    @property
    def valid(self) -> np.ndarray:
        """``[n, H]`` whether each entry is a logged decision (not padding)."""
        return np.arange(self.horizon)[None, :] < self.lengths[:, None]

    @property
    def has_values(self) -> bool:
        """Whether a value model's ``q`` and ``v`` are present (for ``dm`` and ``dr``)."""
        return self.q is not None

    def cumulative_weights(self, max_weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-decision importance weights ``rho_{0:t} = prod_{k<=t} pi_k / mu_k``.

        Args:
            max_weight: Clip each cumulative weight at this value (``None``: no clipping).

        Returns:
            ``[n, H]`` the (clipped) weights, constant after an episode's end, and ``[n, H]``
            whether each was clipped.
        """
        weights = np.cumprod(self.target / self.behaviour, axis=1)
        if max_weight is None:
            return weights, np.zeros_like(weights, dtype=bool)
        return np.minimum(weights, max_weight), weights > max_weight


def _ragged(name: str, values: Sequence[np.ndarray], lengths: list[int] | None) -> list:
    arrays = [np.asarray(value, dtype=np.float64).reshape(-1) for value in values]
    if lengths is not None:
        if len(arrays) != len(lengths):
            raise OPEError(
                f"Got {len(lengths)} episodes of rewards but {len(arrays)} of {name}; pass one "
                "array per episode for each."
            )
        for i, (array, length) in enumerate(zip(arrays, lengths, strict=True)):
            if array.size != length:
                raise OPEError(
                    f"Episode {i}: rewards has {length} steps but {name} has {array.size}; "
                    "pass one entry per decision in every array."
                )
    return arrays


def ope_data(
    rewards: Sequence[np.ndarray],
    behaviour: Sequence[np.ndarray],
    target: Sequence[np.ndarray],
    *,
    q: Sequence[np.ndarray] | None = None,
    v: Sequence[np.ndarray] | None = None,
) -> OPEData:
    """:class:`OPEData` from one array per episode (episodes may differ in length).

    Args:
        rewards: Per episode, ``[T]`` rewards.
        behaviour: Per episode, ``[T]`` the behaviour policy's probability of each action taken.
        target: Per episode, ``[T]`` the target policy's probability of each action taken.
        q: Per episode, ``[T]`` a value model's ``Q(s_t, a_t)`` (for ``dm`` and ``dr``).
        v: Per episode, ``[T]`` its ``V(s_t)`` under the target policy.

    Returns:
        The padded data.

    Raises:
        OPEError: No episodes, arrays whose lengths disagree, or what :class:`OPEData` refuses.
    """
    if len(rewards) == 0:
        raise OPEError(
            "No episodes: off-policy evaluation needs at least one logged episode; check that "
            "the dataset holds decisions."
        )
    reward_arrays = _ragged("rewards", rewards, None)
    lengths = [array.size for array in reward_arrays]
    columns = {"rewards": reward_arrays}
    named = {"behaviour": behaviour, "target": target, "q": q, "v": v}
    for name, values in named.items():
        if values is not None:
            columns[name] = _ragged(name, values, lengths)
    horizon = max(1, max(lengths))
    padded = {}
    for name, arrays in columns.items():
        out = np.zeros((len(lengths), horizon))
        for i, array in enumerate(arrays):
            out[i, : array.size] = array
        padded[name] = out
    return OPEData(
        rewards=padded["rewards"],
        behaviour=padded["behaviour"],
        target=padded["target"],
        lengths=np.asarray(lengths, dtype=np.int64),
        q=padded.get("q"),
        v=padded.get("v"),
    )


@dataclass(frozen=True)
class SupportReport:
    """How much of the target policy's probability the logged behaviour cannot see.

    An action is *unsupported* at a decision when the behaviour policy's probability of it is
    at most ``min_propensity``; a decision is *poorly supported* when the target policy puts
    more than ``threshold`` of its probability on unsupported actions there. Importance
    weights never see those actions, so every importance-weighted estimate (and the
    correction term of doubly robust) leaves their outcomes out: it is biased, by up to that
    share of probability times the range of returns.

    Attributes:
        decisions: Decisions checked.
        poorly_supported: Decisions where the target's unsupported mass exceeds ``threshold``.
        episodes: Episodes checked.
        episodes_poorly_supported: Episodes with at least one poorly supported decision.
        mean_unsupported_mass: The target's probability of unsupported actions, mean over
            decisions.
        max_unsupported_mass: Its largest value at one decision.
        min_propensity: The behaviour probability at or below which an action is unsupported.
        threshold: The unsupported mass above which a decision is poorly supported.
    """

    decisions: int
    poorly_supported: int
    episodes: int
    episodes_poorly_supported: int
    mean_unsupported_mass: float
    max_unsupported_mass: float
    min_propensity: float
    threshold: float

    @property
    def share(self) -> float:
        """The share of decisions that are poorly supported."""
        return self.poorly_supported / self.decisions if self.decisions else 0.0

    def warning(self) -> str | None:
        """A one-line warning when any decision is poorly supported, else ``None``."""
        if not self.poorly_supported:
            return None
        return (
            f"Poor support: at {self.poorly_supported} of {self.decisions} decisions "
            f"({self.share:.1%}; {self.episodes_poorly_supported} of {self.episodes} episodes) "
            f"the target policy puts more than {self.threshold:g} of its probability on actions "
            f"the logger took with probability <= {self.min_propensity:g} (mean "
            f"{self.mean_unsupported_mass:.3g}, max {self.max_unsupported_mass:.3g}); "
            "importance-weighted estimates cannot see those actions and are biased: log with "
            "more exploration (an epsilon-soft or softmax behaviour)."
        )

    def to_json(self) -> dict[str, float | int]:
        """A JSON-ready dict of the fields and ``share``."""
        return {
            "decisions": self.decisions,
            "poorly_supported": self.poorly_supported,
            "share": self.share,
            "episodes": self.episodes,
            "episodes_poorly_supported": self.episodes_poorly_supported,
            "mean_unsupported_mass": self.mean_unsupported_mass,
            "max_unsupported_mass": self.max_unsupported_mass,
            "min_propensity": self.min_propensity,
            "threshold": self.threshold,
        }


def check_support(
    behaviour_distributions: Sequence[np.ndarray],
    target_distributions: Sequence[np.ndarray],
    *,
    min_propensity: float = 1e-6,
    threshold: float = 0.01,
) -> SupportReport:
    """Measure the target policy's probability on actions the behaviour policy never takes.

    Args:
        behaviour_distributions: Per episode, ``[T, A]`` the behaviour policy's full
            distribution at each decision.
        target_distributions: Per episode, ``[T, A]`` the target policy's, same actions.
        min_propensity: A behaviour probability at or below this leaves an action unsupported.
        threshold: A decision whose unsupported target mass exceeds this is poorly supported.

    Returns:
        The report (:class:`SupportReport`).

    Raises:
        OPEError: The two lists differ in length, or an episode's arrays differ in shape.
    """
    if len(behaviour_distributions) != len(target_distributions):
        raise OPEError(
            f"Got {len(behaviour_distributions)} episodes of behaviour distributions but "
            f"{len(target_distributions)} of target distributions; pass one [T, A] array per "
            "episode for each."
        )
    masses, episodes_poor = [], 0
    for i, (mu, pi) in enumerate(zip(behaviour_distributions, target_distributions, strict=True)):
        mu, pi = np.asarray(mu, dtype=np.float64), np.asarray(pi, dtype=np.float64)
        if mu.shape != pi.shape or mu.ndim != 2:
            raise OPEError(
                f"Episode {i}: the behaviour distributions have shape {mu.shape} but the "
                f"target's have {pi.shape}; expected two [T, A] arrays over the same actions."
            )
        mass = np.where(mu <= min_propensity, pi, 0.0).sum(axis=1)
        masses.append(mass)
        episodes_poor += bool((mass > threshold).any())
    mass = np.concatenate(masses) if masses else np.zeros(0)
    return SupportReport(
        decisions=int(mass.size),
        poorly_supported=int((mass > threshold).sum()),
        episodes=len(masses),
        episodes_poorly_supported=episodes_poor,
        mean_unsupported_mass=float(mass.mean()) if mass.size else 0.0,
        max_unsupported_mass=float(mass.max()) if mass.size else 0.0,
        min_propensity=float(min_propensity),
        threshold=float(threshold),
    )
