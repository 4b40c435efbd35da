"""The ``serve`` and ``logs`` subcommands of ``rlagent``: argument parsing only."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

__all__ = [
    "add_bench_serve_options",
    "add_serving_parsers",
    "bench_serve",
    "cmd_logs",
    "cmd_serve",
]


def add_serving_parsers(sub: Any, add_env: Callable[..., None]) -> None:
    """Add ``rlagent serve`` and ``rlagent logs export`` to the subparsers ``sub``."""
    srv = sub.add_parser(
        "serve",
        help="serve a trained agent over HTTP (API, web pages, interaction log)",
        description="Serve MODEL over HTTP with a JSON API and web pages for people, logging "
        "every decision with its action probabilities. See docs/serving.md.",
    )
    srv.add_argument("model", metavar="MODEL", help="a model directory (DIR/model of a run)")
    add_env(srv, required=False, help="the env to serve (default: the model's own)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost)")
    srv.add_argument("--port", type=int, default=8000)
    log = srv.add_mutually_exclusive_group()
    log.add_argument("--log", default=None, metavar="PATH", help="SQLite interaction log")
    log.add_argument("--no-log", action="store_true", help="log nothing")
    srv.add_argument("--planner", choices=["mcts"], help="plan at decision time")
    srv.add_argument("--simulations", type=int, default=64, help="MCTS simulations per step")
    srv.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    srv.add_argument(
        "--encoder-dtype",
        choices=["auto", "fp32", "bf16", "int8"],
        help="encoder precision (default: as trained); int8 only where it agrees with fp32",
    )
    explore = srv.add_mutually_exclusive_group()
    explore.add_argument(
        "--epsilon",
        type=float,
        help="explore: epsilon-greedy around the most likely action, logged (docs/feedback.md)",
    )
    explore.add_argument(
        "--temperature",
        type=float,
        help="explore: sample softmax(logits / T), logged (docs/feedback.md)",
    )
    srv.add_argument("--explore-seed", type=int, default=0, help="seed of the exploration")
    srv.add_argument("--max-batch", type=int, help="most decisions per forward pass (1: none)")
    srv.add_argument("--max-wait-ms", type=float, help="longest wait for a batch to fill")
    srv.add_argument("--session-ttl", type=float, help="seconds before an idle session expires")
    srv.add_argument(
        "--ray",
        action="store_true",
        help="serve on Ray Serve (pip install 'rlagent[ray-serve]'); RAY_ADDRESS joins a cluster",
    )
    srv.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="copies of the app with --ray (default 1; several need the x-session-id header)",
    )

    logs = sub.add_parser("logs", help="work with the interaction logs that a server writes")
    verbs = logs.add_subparsers(dest="logs_command", required=True)
    export = verbs.add_parser(
        "export",
        help="write an interaction log as a Minari dataset",
        description="Write the interaction log PATH as a Minari dataset in DIR: one episode per "
        "session, with each decision's action probabilities and propensity in its infos "
        "(docs/serving.md, Interaction log).",
    )
    export.add_argument("path", metavar="PATH", help="the interaction log (an SQLite file)")
    export.add_argument("--to", required=True, metavar="DIR", help="the dataset folder to write")
    export.add_argument("--dataset-id", metavar="ID", help="Minari id (default: from DIR)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in DIR")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run ``rlagent serve``."""
    from rlagent.serving import (
        DEFAULT_LOG,
        Exploration,
        ServeConfig,
        ServingConfigError,
        serve,
    )
    from rlagent.training import parse_kwargs

    limits = {
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "session_ttl_s": args.session_ttl,
    }
    config = ServeConfig(**{k: v for k, v in limits.items() if v is not None})
    exploration = None
    if args.epsilon is not None or args.temperature is not None:
        exploration = Exploration(
            epsilon=args.epsilon, temperature=args.temperature, seed=args.explore_seed
        )
    kwargs = dict(
        env_id=args.env,
        env_kwargs=parse_kwargs(args.env_kwargs) or None,
        host=args.host,
        port=args.port,
        log=None if args.no_log else (args.log or DEFAULT_LOG),
        planner=args.planner,
        simulations=args.simulations,
        device=args.device,
        encoder_dtype=args.encoder_dtype,
        exploration=exploration,
        config=config,
    )
    if args.ray:
        from rlagent.serving.ray_serve import serve_on_ray

        serve_on_ray(args.model, replicas=1 if args.replicas is None else args.replicas, **kwargs)
    elif args.replicas is not None:
        raise ServingConfigError(
            f"--replicas {args.replicas} needs --ray: replicas are Ray Serve's; without --ray "
            "one uvicorn process serves the app."
        )
    else:
        serve(args.model, **kwargs)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Run ``rlagent logs export``."""
    from rlagent.serving.log_export import export_minari

    out = export_minari(args.path, args.to, dataset_id=args.dataset_id, overwrite=args.overwrite)
    metadata = json.loads((out / "data" / "metadata.json").read_text(encoding="utf-8"))
    print(
        f"Wrote {metadata['total_episodes']} episodes ({metadata['total_steps']} decisions) to "
        f"{out}; read them with rlagent.datasets.read_episodes({str(out)!r})"
    )
    return 0


def add_bench_serve_options(bench: argparse.ArgumentParser) -> None:
    """Add the options of ``rlagent bench serve`` to the ``bench`` parser."""
    group = bench.add_argument_group(
        "bench serve",
        "rlagent serve in a subprocess on 127.0.0.1 under concurrent load, batched and one "
        "request at a time (docs/performance.md, Serving)",
    )
    group.add_argument("--model", metavar="DIR", help="model to serve (default: build one)")
    group.add_argument("--env", metavar="ID", help="env to serve (default: the model's own)")
    group.add_argument(
        "--clients", type=int, nargs="+", metavar="N", help="concurrency levels (1 16 64)"
    )
    group.add_argument("--requests", type=int, metavar="N", help="turns per level per server (384)")
    group.add_argument(
        "--rounds", type=int, metavar="N", help="runs per level, servers alternating (2)"
    )
    group.add_argument("--turns-per-session", type=int, metavar="N", help="(4)")
    group.add_argument(
        "--encoder-dtypes",
        nargs="+",
        metavar="DTYPE",
        help="encoder dtypes to compare: fp32 bf16 int8 (default fp32 bf16)",
    )
    group.add_argument("--max-batch", type=int, help="batched server's max_batch (32)")
    group.add_argument("--max-wait-ms", type=float, help="servers' max_wait_ms (5)")
    group.add_argument(
        "--server-threads", type=int, metavar="N", help="servers' OMP_NUM_THREADS (default: ours)"
    )
    group.add_argument("--timeout", type=float, metavar="S", help="time limit per level (300)")
    group.add_argument("--no-log", action="store_true", help="servers log nothing")


def bench_serve(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Run ``rlagent bench serve``; returns the result and its table."""
    from rlagent.serving.bench import ServeBenchConfig, format_serve_bench, run_serve_bench

    settings = {
        "clients": tuple(args.clients) if args.clients else None,
        "requests": args.requests,
        "rounds": args.rounds,
        "turns_per_session": args.turns_per_session,
        "encoder_dtypes": tuple(args.encoder_dtypes) if args.encoder_dtypes else None,
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "server_threads": args.server_threads,
        "timeout_s": args.timeout,
        "log": False if args.no_log else None,
    }
    given = {k: v for k, v in settings.items() if v is not None}
    config = ServeBenchConfig.quick(**given) if args.quick else ServeBenchConfig(**given)
    result = run_serve_bench(
        args.model, env_id=args.env, encoder=args.encoder, quick=args.quick, config=config
    )
    return result, format_serve_bench(result)
