"""The ``collect``, ``ope`` and ``learn`` subcommands of ``rlagent`` (datasets of logged decisions).

Argument parsing only: each calls a library function of :mod:`rlagent.datasets`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

__all__ = ["add_dataset_parsers", "cmd_collect", "cmd_learn", "cmd_ope"]


def _add_collect(sub: Any, add_env: Callable[..., None]) -> None:
    collect = sub.add_parser(
        "collect",
        help="record simulator episodes with the behaviour policy's action probabilities",
        description="Play MODEL (a model folder) or BASELINE (a baseline of the env) for N "
        "episodes and write them as a Minari dataset in DIR, with the behaviour policy's full "
        "action distribution and the propensity of each action taken, the layout rlagent "
        "logs export writes and rlagent ope reads. A model samples its own distribution "
        "(--temperature divides its logits) or, with --epsilon, acts epsilon-greedy around "
        "its most likely action; a baseline is deterministic unless --epsilon makes it "
        "epsilon-soft. See docs/feedback.md.",
    )
    collect.add_argument("policy", metavar="MODEL|BASELINE", help="a model folder or baseline")
    add_env(
        collect, required=False, help="the env to play (default: the model's; a baseline needs it)"
    )
    collect.add_argument("--episodes", type=int, required=True, metavar="N")
    explore = collect.add_mutually_exclusive_group()
    explore.add_argument(
        "--epsilon", type=float, metavar="E", help="share of uniformly random actions, in [0, 1]"
    )
    explore.add_argument(
        "--temperature", type=float, metavar="T", help="a model's sampling temperature (> 0)"
    )
    collect.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    collect.add_argument("--seed", type=int, default=0, help="episode i uses env seed S + i")
    collect.add_argument("--overwrite", action="store_true", help="replace an earlier dataset")
    collect.add_argument("--dataset-id", help="Minari id (default rlagent-collect/<DIR>-v0)")
    collect.add_argument(
        "--batch-size", type=int, default=64, help="envs played in lockstep by a model"
    )
    collect.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    collect.add_argument("--json", action="store_true", help="print one JSON object")


def add_dataset_parsers(sub: Any, add_env: Callable[..., None]) -> None:
    """Add ``rlagent collect``, ``rlagent ope`` and ``rlagent learn`` to ``sub``."""
    _add_collect(sub, add_env)
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
    _add_learn_parser(sub, add_env)


def _add_learn_parser(sub: Any, add_env: Callable[..., None]) -> None:
    learn = sub.add_parser(
        "learn",
        help="learn a policy from logged episodes, without a simulator",
        description="Train a policy and its critic from the logged episodes in DATASET alone: "
        "behaviour cloning weighted by each episode's feedback (--method bc), or "
        "advantage-weighted regression with the critic fitted on the logged returns (--method "
        "awr). Saves a model folder that rlagent train --init continues with PPO. See "
        "docs/feedback.md, 'Learning from logs'.",
    )
    learn.add_argument("dataset", metavar="DATASET", help="a logged-decision dataset folder")
    learn.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    learn.add_argument(
        "--init", metavar="MODEL", help="start from this model (default: a new one of the env)"
    )
    learn.add_argument("--method", choices=["bc", "awr"], default="bc")
    add_env(learn, required=False, help="the env of the dataset (default: the one it records)")
    learn.add_argument("--epochs", type=int, default=20, help="passes over the data (20)")
    learn.add_argument("--batch-size", type=int, default=64)
    learn.add_argument("--learning-rate", type=float, default=1e-3)
    learn.add_argument(
        "--feedback-weight",
        choices=["return", "outcome", "none"],
        default="return",
        help="bc: weigh each episode by exp of its standardised return (return), 1 or "
        "--negative-weight by its outcome (outcome: resolved, rating, else return > 0), or not",
    )
    learn.add_argument("--temperature", type=float, default=1.0, help="bc, return: temperature")
    learn.add_argument("--negative-weight", type=float, default=0.0, help="bc, outcome")
    learn.add_argument("--awr-beta", type=float, default=1.0, help="awr: temperature")
    learn.add_argument("--awr-max-weight", type=float, default=20.0, help="awr: weight cap")
    learn.add_argument(
        "--awr-lambda",
        type=float,
        default=1.0,
        help="awr: 1 Monte-Carlo returns, 0 reward plus next state's value (lambda-returns)",
    )
    learn.add_argument(
        "--awr-prior",
        choices=["logger", "init"],
        default="logger",
        help="awr: stay close to the logger (classic) or to --init (an exploring logger)",
    )
    learn.add_argument(
        "--probe-feedback",
        action="store_true",
        help="first refit the belief probe to what the logged rewards reveal (customer service)",
    )
    learn.add_argument(
        "--probe-anchor",
        type=float,
        default=0.0,
        help="with --probe-feedback: pull the probe towards --init's (squared-distance weight)",
    )
    learn.add_argument(
        "--probe-patience",
        type=int,
        help="with --probe-feedback: stop after N passes without a better validation loss",
    )
    learn.add_argument("--gamma", type=float, help="discount (default: the model's)")
    learn.add_argument("--val-share", type=float, default=0.2, help="episodes held out (0.2)")
    learn.add_argument("--encoder", help="a new model's encoder (default: the env's config)")
    learn.add_argument("--encoder-layers", type=int, nargs="+", metavar="N")
    learn.add_argument("--seed", type=int, default=0)
    learn.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    learn.add_argument("--overwrite", action="store_true", help="replace a model in --out")
    learn.add_argument("--json", action="store_true", help="print one JSON object")


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


def cmd_learn(args: argparse.Namespace) -> int:
    """Run ``rlagent learn``."""
    from rlagent.datasets import learn_from_dataset
    from rlagent.training import parse_kwargs

    settings = {
        key: value
        for key, value in (("encoder", args.encoder), ("encoder_layers", args.encoder_layers))
        if value is not None
    }
    result = learn_from_dataset(
        args.dataset,
        out=args.out,
        init=args.init,
        method=args.method,
        env_id=args.env,
        env_kwargs=parse_kwargs(args.env_kwargs) or None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        feedback_weight=args.feedback_weight,
        feedback_temperature=args.temperature,
        negative_weight=args.negative_weight,
        awr_beta=args.awr_beta,
        awr_max_weight=args.awr_max_weight,
        awr_lambda=args.awr_lambda,
        awr_prior=args.awr_prior,
        probe_feedback=args.probe_feedback,
        probe_anchor=args.probe_anchor,
        probe_patience=args.probe_patience,
        gamma=args.gamma,
        val_share=args.val_share,
        seed=args.seed,
        device=args.device,
        overwrite=args.overwrite,
        settings=settings or None,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    val = result.val_scores
    held = (
        f"held-out agreement {result.val_before.agreement:.3f} -> {val.agreement:.3f} on "
        f"{len(result.val_episode_ids)} episodes"
        if val is not None
        else "no episodes held out"
    )
    print(
        f"Learnt {result.method} from {result.train_episodes} of {result.episodes} episodes "
        f"({result.decisions} decisions) in {result.wall_time_s:.0f} s; {held}. Saved "
        f"{result.model_path}; continue with PPO: rlagent train --env "
        f"{result.settings['env_id']} --init {result.model_path}"
    )
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    """Run ``rlagent collect``."""
    from rlagent.datasets import collect, collect_summary
    from rlagent.training import parse_kwargs

    out = collect(
        args.policy,
        args.env,
        env_kwargs=parse_kwargs(args.env_kwargs) if args.env_kwargs else None,
        episodes=args.episodes,
        out_dir=args.out,
        seed=args.seed,
        epsilon=args.epsilon,
        temperature=args.temperature,
        overwrite=args.overwrite,
        device=args.device,
        dataset_id=args.dataset_id,
        batch_size=args.batch_size,
    )
    summary = collect_summary(out)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    figures = summary["summary"]
    metrics = "".join(f", {k} {v:.3f}" for k, v in figures["metrics"].items())
    print(
        f"Wrote {figures['episodes']} episodes ({figures['decisions']} decisions) of "
        f"{summary['behaviour']} on {summary['env_id']} to {out} in "
        f"{figures['wall_time_s']:.1f} s ({figures['episodes_per_s']:.1f} episodes/s): mean "
        f"return {figures['mean_return']:.3f}{metrics}"
    )
    return 0
