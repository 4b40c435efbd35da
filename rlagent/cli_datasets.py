"""The ``ope`` subcommand of ``rlagent`` (datasets of logged decisions): argument parsing only."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

__all__ = ["add_dataset_parsers", "cmd_ope"]


def add_dataset_parsers(sub: Any, add_env: Callable[..., None]) -> None:
    """Add ``rlagent ope`` to the subparsers ``sub``."""
    ope = sub.add_parser(
        "ope",
        help="estimate a policy's value from logged episodes (off-policy evaluation)",
        description="Estimate the value of the policy MODEL from the logged episodes in DATASET "
        "alone: importance sampling per episode and per decision, their self-normalised forms, "
        "the direct method and doubly robust, each with a 95%% interval, plus the effective "
        "sample size and a support check. See docs/feedback.md.",
    )
    ope.add_argument("dataset", metavar="DATASET", help="a logged-decision dataset folder")
    ope.add_argument("--policy", required=True, metavar="MODEL", help="the target model folder")
    add_env(ope, required=False, help="the env of the dataset (default: the one it records)")
    ope.add_argument("--gamma", type=float, default=1.0, help="discount (default 1)")
    ope.add_argument(
        "--max-weight", type=float, metavar="W", help="clip importance weights at W (biased)"
    )
    ope.add_argument(
        "--value-model",
        choices=["fqe", "critic"],
        default="fqe",
        help="value model of dm and dr: fitted-Q on the model's features, or its critic",
    )
    ope.add_argument("--bootstrap", type=int, default=1000, help="resamples for wis/wpdis")
    ope.add_argument("--seed", type=int, default=0)
    ope.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    ope.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_ope(args: argparse.Namespace) -> int:
    """Run ``rlagent ope``."""
    from rlagent.datasets import evaluate_dataset
    from rlagent.training import parse_kwargs

    report = evaluate_dataset(
        args.dataset,
        args.policy,
        env_id=args.env,
        env_kwargs=parse_kwargs(args.env_kwargs) or None,
        device=args.device,
        gamma=args.gamma,
        max_weight=args.max_weight,
        value_model=args.value_model,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.summary())
    return 0
