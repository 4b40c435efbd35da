"""Baseline table for the customer-service env: success rate, mean return and turns per policy.

Run ``python -m envs.customer_service.baseline_table --episodes 1000`` (add
``--banking77 DIR`` for the Banking77 rows, DIR holding ``train.csv`` and ``test.csv``; the
validation rows are the part of ``train.csv`` that ``split="val"`` holds out). The built-in
rows come for the full corpus and for ``corpus="core"``, the 44 intents of earlier releases.
Uses gymnasium and numpy only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the ids)

__all__ = ["evaluate_baseline", "main"]


def evaluate_baseline(
    name: str, env_kwargs: Mapping[str, Any], episodes: int, seed: int = 0
) -> dict[str, float]:
    """Run baseline ``name`` for ``episodes`` episodes of ``rlagent/CustomerService-v0``.

    Args:
        name: A key of ``CustomerServiceEnv.BASELINES``.
        env_kwargs: Keyword arguments for ``gym.make``.
        episodes: Number of episodes; episode ``i`` is reset with seed ``seed + i``.
        seed: First seed.

    Returns:
        ``success_rate``, ``mean_return``, ``std_return``, ``mean_turns`` and the mean of
        every other episode metric.
    """
    env = gym.make("rlagent/CustomerService-v0", **env_kwargs)
    policy = env.unwrapped.BASELINES[name](env)
    returns, metrics = [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed + i)
        policy.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
        metrics.append(info["episode_metrics"])
    env.close()
    result = {key: float(np.mean([m[key] for m in metrics])) for key in metrics[0]}
    result["mean_return"] = float(np.mean(returns))
    result["std_return"] = float(np.std(returns))
    result["mean_turns"] = result["turns"]
    return result


def _rows(banking77: str | None) -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = [
        (f"built-in{label} {split}", {"split": split, **kwargs})
        for label, kwargs in (("", {}), (", core", {"corpus": "core"}))
        for split in ("train", "val", "test")
    ]
    if banking77:
        train, test = os.path.join(banking77, "train.csv"), os.path.join(banking77, "test.csv")
        rows += [
            ("Banking77 train.csv, train part", {"split": "train", "dataset": train}),
            ("Banking77 train.csv, val part", {"split": "val", "dataset": train}),
            ("Banking77 test.csv", {"split": "test", "dataset": test}),
        ]
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Print the baseline table as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--banking77", default=None, help="folder with train.csv and test.csv")
    parser.add_argument("--policies", nargs="+", default=["random", "heuristic", "oracle"])
    args = parser.parse_args(argv)
    print("| data | policy | success rate | mean return | mean turns | escalated | abandoned |")
    print("|---|---|---|---|---|---|---|")
    for label, kwargs in _rows(args.banking77):
        for name in args.policies:
            r = evaluate_baseline(name, kwargs, args.episodes, args.seed)
            print(
                f"| {label} | {name} | {r['success_rate']:.3f} | {r['mean_return']:.2f} "
                f"| {r['mean_turns']:.2f} | {r['escalated']:.3f} | {r['abandoned']:.3f} |"
            )


if __name__ == "__main__":
    main()
