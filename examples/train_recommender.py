"""Train PPO with the frozen MiniLM encoder on the recommendation env and compare it with the
popularity, myopic and oracle-greedy baselines.

    python examples/train_recommender.py                  # 300k steps, see docs/envs.md
    python examples/train_recommender.py --quick          # seconds, tiny random encoder

The run goes to --out, which must be new or empty: add --overwrite to replace an earlier run
there (only a folder that rlagent train wrote), or --resume to continue an interrupted one.
"""

from __future__ import annotations

import argparse
import sys

from rlagent.evaluation import evaluate_many, format_table
from rlagent.training import (
    CheckpointError,
    ConfigError,
    RunDirectoryExistsError,
    load_config,
    train,
)

ENV_ID = "rlagent/Recommendation-v0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=None)
    parser.add_argument("--out", default="runs/example-recommendation")
    parser.add_argument("--quick", action="store_true", help="tiny budget and random encoder")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    runs.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    args = parser.parse_args()

    quick = dict(
        encoder="tiny-random",
        n_envs=2,
        eval_freq=0,
        eval_episodes=2,
        baseline_episodes=2,
        ppo={"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    )
    config = load_config(
        ENV_ID,
        n_timesteps=args.timesteps or (128 if args.quick else None),
        **(quick if args.quick else {}),
    )
    try:
        result = train(config, args.out, resume=args.resume, overwrite=args.overwrite)
    except (RunDirectoryExistsError, ConfigError, CheckpointError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if result.interrupted:
        again = " ".join(a for a in sys.argv if a != "--overwrite")
        parser.exit(130, f"Interrupted; continue with: python {again} --resume\n")
    speed = f"{result.wall_time_s:.0f} s ({result.fps:.0f} frames/s)"
    print(f"trained {result.timesteps} steps in {speed}")

    agents = [result.model_path, "random", "popularity", "myopic", "oracle"]
    results = evaluate_many(agents, ENV_ID, episodes=3 if args.quick else 200, seed=123)
    print(format_table(results))


if __name__ == "__main__":
    main()
