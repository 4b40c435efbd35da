"""Off-policy estimators of a target policy's value from logged episodes.

Every estimator reads :class:`~rlagent.datasets.ope_data.OPEData` (``n`` episodes, rewards
``r_t``, behaviour propensities ``mu_t = mu(a_t|s_t)``, target probabilities ``pi_t =
pi(a_t|s_t)``) and returns an :class:`Estimate` of ``E_pi[sum_t gamma^t r_t]`` over the
logged horizon. With ``rho_{0:t} = prod_{k<=t} pi_k / mu_k`` and ``w = rho_{0:T-1}`` the
trajectory weight:

===== ============================================================ ================= =========
name  estimate                                                     unbiased          interval
===== ============================================================ ================= =========
is    ``mean_i w_i G_i``, ``G_i = sum_t gamma^t r_t``              yes               normal
wis   ``sum_i w_i G_i / sum_i w_i`` (self-normalised)              consistent        bootstrap
pdis  ``mean_i sum_t gamma^t rho_{0:t} r_t`` (Precup 2000)         yes               normal
wpdis ``sum_t gamma^t sum_i rho^i_{0:t} r^i_t / sum_i rho^i_{0:t}`` consistent        bootstrap
dm    ``mean_i V(s^i_0)`` from a value model                       if the model is   normal
dr    ``mean_i sum_t gamma^t [rho_{0:t} (r_t - Q(s_t, a_t))``      yes, any model    normal
      ``+ rho_{0:t-1} V(s_t)]`` (Jiang and Li 2016)
===== ============================================================ ================= =========

The unbiased means (``is``, ``pdis``, ``dr``; ``dm`` too) get a normal-approximation interval:
the mean of per-episode terms plus or minus 1.96 standard errors. The self-normalised forms are
ratios, whose variance has no simple formula: their interval is the 2.5 and 97.5 percentiles
of ``n_bootstrap`` resamples of the episodes (seeded). ``dm``'s interval reflects only the
spread of start states, never the value model's own error.

``wpdis`` normalises at each step over every episode, an episode that ended earlier keeping
its final weight (its padding is an absorbing state with reward 0). Normalising over only the
episodes that reach step ``t`` would estimate ``E_pi[r_t | T > t]`` instead of ``E_pi[r_t]``,
which is wrong whenever the target policy changes how long episodes last.

Clipping (``max_weight``) caps every cumulative weight ``rho_{0:t}`` (and so ``w``); it trades
variance for bias (downwards for positive rewards) and :attr:`Estimate.clipped_share` reports
how often it bit. :attr:`Estimate.ess` is the effective sample size of the (clipped)
trajectory weights, ``(sum w)^2 / sum w^2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlagent.datasets.ope_data import OPEData, OPEError

__all__ = [
    "ESTIMATORS",
    "Estimate",
    "direct_method",
    "doubly_robust",
    "effective_sample_size",
    "estimate_all",
    "importance_sampling",
    "per_decision_importance_sampling",
    "weighted_importance_sampling",
    "weighted_per_decision_importance_sampling",
]

#: The two-sided 95% quantile of the standard normal distribution.
Z95 = 1.959963984540054
#: Bootstrap resamples for the self-normalised estimators' intervals.
DEFAULT_BOOTSTRAP = 1000
#: Most episode counts held at once while resampling (resamples x episodes).
_BOOTSTRAP_CELLS = 4_000_000


@dataclass(frozen=True)
class Estimate:
    """One estimator's estimate of the target policy's value.

    Attributes:
        name: The estimator (``"is"``, ``"wis"``, ``"pdis"``, ``"wpdis"``, ``"dm"``, ``"dr"``).
        value: The estimate (``nan`` when undefined, e.g. every weight 0 in ``wis``).
        ci95: The 95% confidence interval ``(low, high)`` (``nan`` when undefined: one episode).
        interval: How the interval was made: ``"normal"`` or ``"bootstrap"``.
        std_error: The standard error (of the bootstrap resamples for ``"bootstrap"``).
        ess: The effective sample size of the trajectory weights (``n`` for ``dm``).
        clipped_share: The share of the estimator's weights that ``max_weight`` clipped.
        episodes: The number of episodes.
    """

    name: str
    value: float
    ci95: tuple[float, float]
    interval: str
    std_error: float
    ess: float
    clipped_share: float
    episodes: int

    def to_json(self) -> dict[str, Any]:
        """``{"value", "ci95", "interval", "std_error", "ess", "clipped_share"}``; nan: null."""
        return {
            "value": _finite(self.value),
            "ci95": [_finite(self.ci95[0]), _finite(self.ci95[1])],
            "interval": self.interval,
            "std_error": _finite(self.std_error),
            "ess": _finite(self.ess),
            "clipped_share": self.clipped_share,
        }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of importance weights (0 if all 0).

    Args:
        weights: ``[n]`` non-negative weights.

    Returns:
        Between 1 and ``n`` for weights not all 0: ``n`` when all are equal.
    """
    weights = np.asarray(weights, dtype=np.float64)
    squares = float(np.sum(weights**2))
    return float(np.sum(weights) ** 2 / squares) if squares > 0 else 0.0


def _check_settings(gamma: float, max_weight: float | None) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise OPEError(f"gamma={gamma!r}; expected a discount in [0, 1] (1: undiscounted).")
    if max_weight is not None and not max_weight > 0:
        raise OPEError(
            f"max_weight={max_weight!r}; expected a positive cap on importance weights, or None "
            "for no clipping."
        )


def _discounts(data: OPEData, gamma: float) -> np.ndarray:
    return gamma ** np.arange(data.horizon, dtype=np.float64)


def _normal(name: str, terms: np.ndarray, ess: float, clipped: float) -> Estimate:
    """An unbiased mean of per-episode terms with its normal-approximation interval."""
    n = terms.size
    value = float(terms.mean())
    se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    ci = (value - Z95 * se, value + Z95 * se)
    return Estimate(name, value, ci, "normal", se, ess, clipped, n)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _bootstrap(
    name: str,
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    n_bootstrap: int,
    seed: int | np.random.Generator | None,
    ess: float,
    clipped: float,
) -> Estimate:
    """A ratio estimate with its percentile-bootstrap interval over episodes.

    ``statistic`` maps ``[B, n]`` episode counts (how often each episode is drawn) to ``[B]``
    estimates; the estimate itself is the statistic of counts all 1.
    """
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 1:
        raise OPEError(f"n_bootstrap={n_bootstrap!r}; expected an int >= 1 (e.g. 1000).")
    value = float(statistic(np.ones((1, n)))[0])
    rng = _rng(seed)
    chunk = max(1, min(n_bootstrap, _BOOTSTRAP_CELLS // n))
    draws = []
    for start in range(0, n_bootstrap, chunk):
        rows = min(chunk, n_bootstrap - start)
        picks = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        counts = np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n)
        draws.append(statistic(counts.astype(np.float64)))
    draws = np.concatenate(draws)
    draws = draws[np.isfinite(draws)]
    if n < 2 or draws.size == 0:
        return Estimate(
            name, value, (float("nan"),) * 2, "bootstrap", float("nan"), ess, clipped, n
        )
    low, high = np.percentile(draws, [2.5, 97.5])
    se = float(draws.std(ddof=1)) if draws.size > 1 else float("nan")
    return Estimate(name, value, (float(low), float(high)), "bootstrap", se, ess, clipped, n)


def _ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    """``numerator / denominator``, ``empty`` where the denominator is 0."""
    positive = denominator > 0
    return np.where(positive, numerator / np.where(positive, denominator, 1.0), empty)


def _trajectory(data: OPEData, gamma: float, max_weight: float | None):
    _check_settings(gamma, max_weight)
    weights, clipped = data.cumulative_weights(max_weight)
    returns = data.rewards @ _discounts(data, gamma)
    return weights[:, -1], returns, float(clipped[:, -1].mean())


def importance_sampling(
    data: OPEData, *, gamma: float = 1.0, max_weight: float | None = None
) -> Estimate:
    """Trajectory-wise importance sampling: ``mean_i w_i G_i`` (unbiased; normal interval).

    Args:
        data: The logged episodes.
        gamma: The discount (1: the undiscounted return).
        max_weight: Clip each trajectory weight at this value (biased; ``None``: no clipping).

    Returns:
        The estimate (``clipped_share``: the share of episodes whose weight was clipped).

    Raises:
        OPEError: ``gamma`` outside ``[0, 1]`` or ``max_weight`` not positive.
    """
    weights, returns, clipped = _trajectory(data, gamma, max_weight)
    return _normal("is", weights * returns, effective_sample_size(weights), clipped)


def weighted_importance_sampling(
    data: OPEData,
    *,
    gamma: float = 1.0,
    max_weight: float | None = None,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int | np.random.Generator | None = 0,
) -> Estimate:
    """Self-normalised importance sampling: ``sum_i w_i G_i / sum_i w_i`` (bootstrap interval).

    Biased for few episodes, consistent, usually of much lower variance than ``is``; ``nan``
    when every trajectory weight is 0 (the target never takes the logged actions).

    Args:
        data: The logged episodes.
        gamma: The discount.
        max_weight: Clip each trajectory weight at this value.
        n_bootstrap: Resamples of the episodes for the interval.
        seed: Seed (or generator) of the resampling.

    Returns:
        The estimate.

    Raises:
        OPEError: Bad ``gamma``, ``max_weight`` or ``n_bootstrap``.
    """
    weights, returns, clipped = _trajectory(data, gamma, max_weight)

    def statistic(counts: np.ndarray) -> np.ndarray:
        return _ratio(counts @ (weights * returns), counts @ weights, np.nan)

    ess = effective_sample_size(weights)
    return _bootstrap(
        "wis",
        statistic,
        data.n_episodes,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ess=ess,
        clipped=clipped,
    )


def _per_decision(data: OPEData, gamma: float, max_weight: float | None):
    _check_settings(gamma, max_weight)
    weights, clipped = data.cumulative_weights(max_weight)
    valid = data.valid
    share = float(clipped[valid].mean()) if valid.any() else 0.0
    return weights, _discounts(data, gamma), share


def per_decision_importance_sampling(
    data: OPEData, *, gamma: float = 1.0, max_weight: float | None = None
) -> Estimate:
    """Per-decision importance sampling (Precup 2000): ``mean_i sum_t gamma^t rho_{0:t} r_t``.

    Unbiased; each reward is weighted only by the decisions before it, so its variance is at
    most that of ``is`` for the same data (typically). Normal interval.

    Args:
        data: The logged episodes.
        gamma: The discount.
        max_weight: Clip each cumulative weight ``rho_{0:t}`` at this value.

    Returns:
        The estimate (``clipped_share``: the share of decisions whose weight was clipped).

    Raises:
        OPEError: Bad ``gamma`` or ``max_weight``.
    """
    weights, discounts, clipped = _per_decision(data, gamma, max_weight)
    terms = (weights * data.rewards) @ discounts
    return _normal("pdis", terms, effective_sample_size(weights[:, -1]), clipped)


def weighted_per_decision_importance_sampling(
    data: OPEData,
    *,
    gamma: float = 1.0,
    max_weight: float | None = None,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int | np.random.Generator | None = 0,
) -> Estimate:
    """Weighted per-decision importance sampling: normalise the weights at each step.

    ``sum_t gamma^t (sum_i rho^i_{0:t} r^i_t) / (sum_i rho^i_{0:t})`` over every episode, one
    that ended earlier keeping its final weight (see the module docstring). A step where every
    weight is 0 adds 0. Consistent; bootstrap interval.

    Args:
        data: The logged episodes.
        gamma: The discount.
        max_weight: Clip each cumulative weight at this value.
        n_bootstrap: Resamples of the episodes for the interval.
        seed: Seed (or generator) of the resampling.

    Returns:
        The estimate.

    Raises:
        OPEError: Bad ``gamma``, ``max_weight`` or ``n_bootstrap``.
    """
    weights, discounts, clipped = _per_decision(data, gamma, max_weight)
    weighted = weights * data.rewards

    def statistic(counts: np.ndarray) -> np.ndarray:
        return _ratio(counts @ weighted, counts @ weights, 0.0) @ discounts

    ess = effective_sample_size(weights[:, -1])
    return _bootstrap(
        "wpdis",
        statistic,
        data.n_episodes,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ess=ess,
        clipped=clipped,
    )


def _needs_values(data: OPEData, name: str) -> None:
    if not data.has_values:
        raise OPEError(
            f"{name} needs a value model: build the data with q= (Q(s_t, a_t)) and v= (V(s_t) "
            "under the target policy), e.g. from rlagent.datasets.ope_models.fit_fqe."
        )


def direct_method(data: OPEData, *, gamma: float = 1.0) -> Estimate:
    """The direct method: ``mean_i V(s^i_0)``, the value model's value of each start state.

    Unbiased only if the value model is exact; its normal interval covers the spread of
    start states, not the model's error. ``gamma`` is checked but unused (``V`` is already the
    discounted value).

    Args:
        data: The logged episodes, with ``v``.
        gamma: The discount the value model was fitted with.

    Returns:
        The estimate (``ess``: ``n``; no weights).

    Raises:
        OPEError: No value model in ``data``, or a bad ``gamma``.
    """
    _check_settings(gamma, None)
    _needs_values(data, "dm")
    return _normal("dm", data.v[:, 0].copy(), float(data.n_episodes), 0.0)


def doubly_robust(
    data: OPEData, *, gamma: float = 1.0, max_weight: float | None = None
) -> Estimate:
    """Doubly robust for episodes (Jiang and Li 2016), in its unrolled form.

    ``mean_i sum_t gamma^t [rho_{0:t} (r_t - Q(s_t, a_t)) + rho_{0:t-1} V(s_t)]`` with
    ``rho_{0:-1} = 1``. Unbiased for any value model (exact ``Q``: zero variance from the
    actions); with a good one, of much lower variance than ``is`` and ``pdis``. Normal
    interval.

    Args:
        data: The logged episodes, with ``q`` and ``v``.
        gamma: The discount (the value model's).
        max_weight: Clip each cumulative weight at this value.

    Returns:
        The estimate.

    Raises:
        OPEError: No value model in ``data``, or bad settings.
    """
    _needs_values(data, "dr")
    weights, discounts, clipped = _per_decision(data, gamma, max_weight)
    previous = np.concatenate([np.ones((data.n_episodes, 1)), weights[:, :-1]], axis=1)
    steps = weights * (data.rewards - data.q) + previous * data.v
    return _normal("dr", steps @ discounts, effective_sample_size(weights[:, -1]), clipped)


#: Every estimator by its JSON key.
ESTIMATORS: Mapping[str, Callable[..., Estimate]] = {
    "is": importance_sampling,
    "wis": weighted_importance_sampling,
    "pdis": per_decision_importance_sampling,
    "wpdis": weighted_per_decision_importance_sampling,
    "dm": direct_method,
    "dr": doubly_robust,
}
_BOOTSTRAPPED = ("wis", "wpdis")


def estimate_all(
    data: OPEData,
    *,
    gamma: float = 1.0,
    max_weight: float | None = None,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> dict[str, Estimate]:
    """Run several estimators on the same data.

    Args:
        data: The logged episodes.
        gamma: The discount.
        max_weight: Clip cumulative weights at this value (not used by ``dm``).
        n_bootstrap: Resamples for the bootstrapped intervals.
        seed: Seed of the resampling.
        names: Which estimators (keys of :data:`ESTIMATORS`); default all, ``dm`` and ``dr``
            only when ``data`` has a value model.

    Returns:
        Estimates by name, in :data:`ESTIMATORS` order.

    Raises:
        OPEError: An unknown name, ``dm``/``dr`` named without a value model, bad settings.
    """
    if names is None:
        names = [n for n in ESTIMATORS if data.has_values or n not in ("dm", "dr")]
    unknown = [name for name in names if name not in ESTIMATORS]
    if unknown:
        raise OPEError(f"Unknown estimators {unknown}; choose from {list(ESTIMATORS)}.")
    out = {}
    for name in ESTIMATORS:
        if name not in names:
            continue
        kwargs: dict[str, Any] = {"gamma": gamma}
        if name != "dm":
            kwargs["max_weight"] = max_weight
        if name in _BOOTSTRAPPED:
            kwargs.update(n_bootstrap=n_bootstrap, seed=seed)
        out[name] = ESTIMATORS[name](data, **kwargs)
    return out
