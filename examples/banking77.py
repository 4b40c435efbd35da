"""Train on real customer messages: the customer-service env on Banking77 (CC BY 4.0).

Customers open with real Banking77 utterances, mapped into the env's 11 resolution groups by
the bundled category mapping. The agent trains on train.csv less a held-out tenth of each
category (``split="train"``); the evaluations during training, which pick best_model/, use
that held-out tenth (``split="val"``); test.csv -- utterances never seen in training or
selection -- gives the figure printed at the end. The data is not shipped: point --data at a
folder holding Banking77's train.csv and test.csv (the project's tests use
../shared/data/banking77).

    python examples/banking77.py --data ../shared/data/banking77
    python examples/banking77.py --quick      # seconds, tiny random encoder, 1 evaluation

The run goes to --out, which must be new or empty: add --overwrite to replace an earlier run
there (only a folder that rlagent train wrote), or --resume to continue an interrupted one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlagent.evaluation import evaluate_many, format_table
from rlagent.training import (
    CheckpointError,
    ConfigError,
    RunDirectoryExistsError,
    load_config,
    train,
)

ENV_ID = "rlagent/CustomerService-v0"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the CSVs")
    parser.add_argument("--timesteps", type=int, default=200_000)
    parser.add_argument("--out", default="runs/example-banking77")
    parser.add_argument("--quick", action="store_true", help="tiny budget and random encoder")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    runs.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    args = parser.parse_args()
    train_csv, test_csv = args.data / "train.csv", args.data / "test.csv"
    if not (train_csv.is_file() and test_csv.is_file()):
        print(
            f"Banking77 not found in {args.data}: pass --data FOLDER holding train.csv and "
            "test.csv (columns text,category).",
            file=sys.stderr,
        )
        return 0 if args.quick else 1

    overrides = dict(
        env_kwargs={"dataset": str(train_csv), "split": "train"},
        eval_env_kwargs={"dataset": str(train_csv), "split": "val"},
    )
    if args.quick:
        overrides.update(
            encoder="tiny-random",
            encoder_layers=[-1],  # tiny-random has 2 layers; the bundled config also pools layer 3
            n_envs=2,
            eval_freq=0,
            eval_episodes=3,
            baseline_episodes=3,
            ppo={"n_steps": 32, "batch_size": 32, "n_epochs": 1},
        )
    config = load_config(ENV_ID, n_timesteps=128 if args.quick else args.timesteps, **overrides)
    try:
        result = train(config, args.out, resume=args.resume, overwrite=args.overwrite)
    except (RunDirectoryExistsError, ConfigError, CheckpointError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if result.interrupted:
        again = " ".join(a for a in sys.argv if a != "--overwrite")
        parser.exit(130, f"Interrupted; continue with: python {again} --resume\n")
    print(f"trained {result.timesteps} steps in {result.wall_time_s:.0f} s")
    results = evaluate_many(
        [result.model_path, "random", "heuristic", "oracle"],
        ENV_ID,
        env_kwargs={"dataset": str(test_csv), "split": "test"},
        episodes=5 if args.quick else 1000,
        seed=123,
    )
    print(format_table(results, title="Banking77 test utterances"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
