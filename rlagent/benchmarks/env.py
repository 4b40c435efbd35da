"""``rlagent bench env``: raw environment steps per second, in one process.

Each bundled environment is stepped with uniformly random actions (drawn up front from a
seeded generator, so the policy costs nothing) and reset whenever an episode ends; the
figure is the median over repeats of steps divided by wall time. Where recsim-no-tf is
installed, RecSim's interest_evolution runs beside the recommendation env on the same
settings.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["format_env_bench", "measure_env_speed", "run_env_bench"]


def _random_actions(space: gym.Space, n: int, rng: np.random.Generator) -> list[Any]:
    if isinstance(space, gym.spaces.Discrete):
        return [int(a) for a in rng.integers(space.start, space.start + space.n, size=n)]
    if isinstance(space, gym.spaces.MultiDiscrete):
        return list(rng.integers(0, space.nvec, size=(n, *space.nvec.shape)))
    space.seed(int(rng.integers(2**31)))
    return [space.sample() for _ in range(n)]


def measure_env_speed(
    env: gym.Env, *, steps: int = 20_000, repeats: int = 3, seed: int = 0
) -> dict[str, float]:
    """Median raw steps/s of ``env`` under random actions.

    Args:
        env: The environment (pass ``env.unwrapped`` to leave out Gymnasium's wrappers).
        steps: Steps per repeat.
        repeats: Number of timed repeats.
        seed: Seed of the action generator and of the resets.

    Returns:
        ``steps_per_s`` (median), ``min``/``max`` over repeats, and ``episodes`` per repeat.
    """
    rng = np.random.default_rng(seed)
    rates, episodes = [], 0
    for r in range(repeats):
        actions = _random_actions(env.action_space, steps, rng)
        env.reset(seed=seed + r)
        episodes = 0
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                episodes += 1
                env.reset()
        rates.append(steps / (time.perf_counter() - start))
    return {
        "steps_per_s": statistics.median(rates),
        "min_steps_per_s": min(rates),
        "max_steps_per_s": max(rates),
        "steps": steps,
        "repeats": repeats,
        "episodes_per_repeat": episodes,
    }


def run_env_bench(*, repeats: int = 3, quick: bool = False) -> dict[str, Any]:
    """Benchmark every bundled environment (and RecSim side by side when installed).

    Args:
        repeats: Timed repeats per environment.
        quick: Use 1,000 steps instead of 20,000 (for smoke tests).

    Returns:
        A JSON-ready dict keyed by environment id.
    """
    import envs

    steps = 1_000 if quick else 20_000
    out: dict[str, Any] = {}
    for env_id in envs.ENV_IDS:
        env = gym.make(env_id)
        out[env_id] = measure_env_speed(env.unwrapped, steps=steps, repeats=repeats)
        env.close()
    try:
        from rlagent.benchmarks.recsim import compare_with_recsim
    except ImportError:
        compare_with_recsim = None
    if compare_with_recsim is not None:
        try:
            out["recsim_side_by_side"] = compare_with_recsim(steps=steps, repeats=repeats)
        except ImportError as exc:
            out["recsim_side_by_side"] = {"skipped": str(exc)}
    return out


def format_env_bench(result: dict[str, Any]) -> str:
    """A Markdown table of :func:`run_env_bench`'s result."""
    lines = ["| env | steps/s (median) | min | max |", "|---|---|---|---|"]
    for name, row in result.items():
        if isinstance(row, dict) and "steps_per_s" in row:
            lines.append(
                f"| {name} | {row['steps_per_s']:,.0f} | {row['min_steps_per_s']:,.0f} | "
                f"{row['max_steps_per_s']:,.0f} |"
            )
    side = result.get("recsim_side_by_side")
    if side and "skipped" in side:
        lines += ["", f"RecSim side by side skipped: {side['skipped']}"]
    elif side:
        lines += [
            "",
            "RecSim interest_evolution side by side (same settings):",
            "",
            "| simulator | steps/s | random mean return | best-topic mean return |",
            "|---|---|---|---|",
        ]
        for name in ("rlagent", "recsim"):
            row = side[name]
            lines.append(
                f"| {name} | {row['steps_per_s']:,.0f} | {row['random']['mean_return']:.1f} | "
                f"{row['best_topic']['mean_return']:.1f} |"
            )
        lines.append(f"\nspeed-up: {side['speedup']:.1f}x")
    return "\n".join(lines)
