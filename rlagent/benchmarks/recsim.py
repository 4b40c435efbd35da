"""RecSim interest_evolution beside ``rlagent/Recommendation-v0`` on the same settings.

Both simulators run RecSim's interest-evolution user (``dynamics="recsim"`` on our side) with the
same number of candidates and slate size. Two figures are compared:

* raw steps per second in one process, stepping with random slates of distinct candidates drawn
  up front (so the policy costs nothing), resetting when an episode ends; the median of
  ``repeats`` runs;
* the mean return (minutes watched) and session length over ``episodes`` episodes of two
  policies, the parity check of the user model: ``random`` (distinct random candidates) and
  ``best_topic`` (the candidates of the topics with the highest mean quality; RecSim shows the
  topic as a one-hot feature, our env's catalogue holds it).

RecSim is optional: ``pip install rlagent[recsim]`` (recsim-no-tf). RecSim draws its user
choices from NumPy's global generator, which this module leaves alone, so RecSim's figures vary
a little from run to run.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

__all__ = ["compare_with_recsim", "make_recsim_env"]


def make_recsim_env(*, n_candidates: int = 10, slate_size: int = 2, seed: int = 0) -> Any:
    """RecSim's interest_evolution gym env (documents resampled every step).

    Raises:
        ImportError: With an install hint when recsim-no-tf is missing.
    """
    try:
        from recsim.environments import interest_evolution
    except ImportError as exc:
        raise ImportError(
            f"RecSim is not installed ({exc}); install it with `pip install rlagent[recsim]` "
            "(the recsim-no-tf package) to run the side-by-side benchmark"
        ) from exc
    config = {
        "num_candidates": n_candidates,
        "slate_size": slate_size,
        "resample_documents": True,
        "seed": seed,
    }
    return interest_evolution.create_environment(config)


def _slates(n: int, n_candidates: int, slate_size: int, rng: np.random.Generator) -> list[Any]:
    """``n`` slates of distinct positions (RecSim's RandomAgent draws them so)."""
    keys = rng.random((n, n_candidates))
    return [row.tolist() for row in np.argsort(keys, axis=1)[:, :slate_size]]


def _ours_step(env: Any, action: Any) -> tuple[Any, float, bool]:
    obs, reward, terminated, truncated, _ = env.step(action)
    return obs, reward, terminated or truncated


def _recsim_step(env: Any, action: Any) -> tuple[Any, float, bool]:
    obs, reward, done, _ = env.step(action)
    return obs, reward, done


def _speed(env: Any, step: Any, reset: Any, slates: list[Any], repeats: int) -> list[float]:
    rates = []
    for r in range(repeats):
        reset(r)
        start = time.perf_counter()
        for action in slates:
            _, _, done = step(env, action)
            if done:
                reset(None)
        rates.append(len(slates) / (time.perf_counter() - start))
    return rates


def _returns(env: Any, step: Any, reset: Any, episodes: int, slate_source: Any) -> dict[str, Any]:
    returns, lengths = [], []
    for episode in range(episodes):
        obs = reset(episode)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, done = step(env, slate_source(obs))
            total += reward
            length += 1
        returns.append(total)
        lengths.append(length)
    return {
        "mean_return": float(np.mean(returns)),
        "return_stderr": float(np.std(returns) / np.sqrt(episodes)),
        "mean_session_length": float(np.mean(lengths)),
        "episodes": episodes,
    }


def compare_with_recsim(
    *,
    n_candidates: int = 10,
    slate_size: int = 2,
    steps: int = 20_000,
    repeats: int = 3,
    episodes: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Run RecSim's interest_evolution and our env side by side.

    Args:
        n_candidates: Candidates per step (RecSim's ``num_candidates``).
        slate_size: Items per slate.
        steps: Timed steps per repeat.
        repeats: Timed repeats (the median is reported).
        episodes: Episodes of the random policy for the mean return.
        seed: Seed of the slates and of our env's resets.

    Returns:
        ``{"settings": ..., "rlagent": ..., "recsim": ..., "speedup": ours / RecSim steps/s}``;
        each side holds ``steps_per_s`` (median), ``steps_per_s_runs``, and for each policy
        (``"random"``, ``"best_topic"``) ``mean_return``, ``return_stderr``,
        ``mean_session_length`` and ``episodes``.

    Raises:
        ImportError: With an install hint when recsim-no-tf is missing.
    """
    from envs.recommendation import RecommendationEnv

    recsim_env = make_recsim_env(n_candidates=n_candidates, slate_size=slate_size, seed=seed)
    ours = RecommendationEnv(n_candidates=n_candidates, slate_size=slate_size)
    rng = np.random.default_rng(seed)
    slates = _slates(steps, n_candidates, slate_size, rng)
    if slate_size == 1:
        ours_slates: list[Any] = [s[0] for s in slates]
    else:
        ours_slates = [np.array(s, dtype=np.int64) for s in slates]

    def reset_ours(s: int | None) -> Any:
        return ours.reset(seed=None if s is None else seed + s)[0]

    def reset_recsim(s: int | None) -> Any:
        return recsim_env.reset()

    def as_action(slate: np.ndarray) -> Any:
        return int(slate[0]) if slate_size == 1 else slate

    def random_ours(obs: Any) -> Any:
        return as_action(np.argsort(rng.random(n_candidates))[:slate_size])

    def random_recsim(obs: Any) -> Any:
        return np.argsort(rng.random(n_candidates))[:slate_size]

    def best_topic_ours(obs: Any) -> Any:
        catalog = ours.catalog
        means = catalog.topic_quality[catalog.topics[list(ours.candidate_items)]]
        return as_action(np.lexsort((rng.random(n_candidates), -means))[:slate_size])

    def best_topic_recsim(obs: Any) -> Any:
        # RecSim's topic means rise with the cluster index, shown as a one-hot feature.
        clusters = np.array([np.argmax(f) for f in obs["doc"].values()])
        return np.lexsort((rng.random(n_candidates), -clusters))[:slate_size]

    result: dict[str, Any] = {
        "settings": {
            "n_candidates": n_candidates,
            "slate_size": slate_size,
            "steps": steps,
            "repeats": repeats,
            "episodes": episodes,
            "seed": seed,
        }
    }
    for name, env, step, reset, actions, policies in (
        ("rlagent", ours, _ours_step, reset_ours, ours_slates, (random_ours, best_topic_ours)),
        (
            "recsim",
            recsim_env,
            _recsim_step,
            reset_recsim,
            slates,
            (random_recsim, best_topic_recsim),
        ),
    ):
        rates = _speed(env, step, reset, actions, repeats)
        row: dict[str, Any] = {"steps_per_s": statistics.median(rates), "steps_per_s_runs": rates}
        for policy_name, policy in zip(("random", "best_topic"), policies, strict=True):
            row[policy_name] = _returns(env, step, reset, episodes, policy)
        result[name] = row
    result["speedup"] = result["rlagent"]["steps_per_s"] / result["recsim"]["steps_per_s"]
    return result
