"""Tune PPO's and the encoder's hyperparameters on the customer-service env with Optuna.

    python examples/tune.py                    # 20 trials x 20k steps (hours on a laptop CPU)
    python examples/tune.py --trials 5 --timesteps 5000
    python examples/tune.py --quick            # seconds: 2 tiny trials, tiny random encoder

The study is kept in a journal file, ``<out>/study.log``: running the script again adds trials
to the same study, and so does running it in several terminals at once (or pass
``--storage sqlite:///tune.db``). Each trial is a training run in ``<out>/trials/trial_<n>``;
the best settings land in ``<out>/best_config.yaml`` for ``rlagent train --config`` and
``<out>/trials.png`` plots the search. See docs/tuning.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlagent.training.tuning import SearchSpace, TuneConfig, format_tune_summary, tune

ENV_ID = "rlagent/CustomerService-v0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--timesteps", type=int, default=None)
    parser.add_argument("--storage", help="database URL or journal file (default <out>/study.log)")
    parser.add_argument("--out", default=None, help="default runs/example-tune[-quick]")
    parser.add_argument("--quick", action="store_true", help="tiny budget and random encoder")
    args = parser.parse_args()

    out = Path(args.out or ("runs/example-tune-quick" if args.quick else "runs/example-tune"))
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        settings = dict(
            encoder="tiny-random",
            encoder_layers=[-1],  # tiny-random has 2 layers; the bundled config also pools layer 3
            n_envs=1,
            eval_episodes=3,
            device="cpu",
            search_space=SearchSpace(
                n_steps=(16, 32), n_minibatches=(1, 2), n_epochs=(1, 2), max_length=(24,)
            ),
        )
    else:
        settings = dict(eval_episodes=50)
    config = TuneConfig(
        env_id=ENV_ID,
        n_trials=args.trials or (2 if args.quick else 20),
        timesteps=args.timesteps or (32 if args.quick else 20_000),
        storage=args.storage or str(out / "study.log"),
        study_name="example-customer-service",
        sampler="tpe",
        pruner="median",
        out_dir=str(out),
        **settings,
    )
    summary = tune(config)
    print(format_tune_summary(summary))
    ranked = sorted(
        (t for t in summary["trials"] if t["value"] is not None), key=lambda t: -t["value"]
    )
    print("\nTop trials:")
    for trial in ranked[:5]:
        lr, n_steps = trial["params"].get("learning_rate"), trial["params"].get("n_steps")
        print(
            f"  trial {trial['number']:>3}: {trial['value']:8.3f}  lr={lr:.2e}  n_steps={n_steps}"
        )


if __name__ == "__main__":
    main()
