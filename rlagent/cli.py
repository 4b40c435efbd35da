"""The ``rlagent`` command line. It only parses arguments and calls library functions.

Subcommands: ``train``, ``evaluate``, ``export``, ``bench``, ``tune``, ``finetune``, ``serve``,
``logs``, ``collect`` and ``ope``;
``rlagent COMMAND --help`` lists each one's flags (docs/cli.md has examples).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlagent.cli_datasets import add_dataset_parsers, cmd_collect, cmd_learn, cmd_ope
from rlagent.cli_finetune import add_finetune_parser, cmd_finetune
from rlagent.cli_serving import (
    add_bench_serve_options,
    add_serving_parsers,
    bench_serve,
    cmd_logs,
    cmd_serve,
)

__all__ = ["build_parser", "main"]

_EXIT_USAGE = 2


def _add_env(
    parser: argparse.ArgumentParser, *, required: bool, help: str = "registered environment id"
) -> None:
    parser.add_argument("--env", required=required, help=help)
    parser.add_argument(
        "--env-kwargs",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="environment keyword arguments, e.g. split=test noise=0.1",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rlagent`` command."""
    parser = argparse.ArgumentParser(
        prog="rlagent", description="Train, evaluate and benchmark RL agents that read text."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a PPO agent with a BERT text encoder")
    _add_env(
        train,
        required=False,
        help="registered environment id (required, except with --resume, which reads it from "
        "the run's config.yaml)",
    )
    train.add_argument("--timesteps", type=int, help="total environment steps")
    train.add_argument("--out", default=None, help="run directory (default runs/<env>)")
    train.add_argument("--encoder", help="default | tiny-random | local folder | hub id")
    train.add_argument("--encoder-mode", choices=["frozen", "lora", "full"])
    train.add_argument(
        "--encoder-layers",
        type=int,
        nargs="+",
        metavar="N",
        help="hidden states to pool per segment, e.g. -1 3 (0 is the embeddings, -1 the last "
        "layer); -1 alone for an encoder with fewer layers than the config names",
    )
    train.add_argument(
        "--encoder-dtype",
        choices=["auto", "fp32", "bf16", "int8"],
        help="what the encoder runs in; int8 (frozen mode only) is a dynamically quantised "
        "copy, see docs/encoders.md",
    )
    train.add_argument("--n-envs", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--device", choices=["auto", "cpu", "cuda"])
    train.add_argument("--config", help="YAML file of settings overriding the env's defaults")
    train.add_argument("--eval-freq", type=int, help="evaluate every N steps (0: only at the end)")
    train.add_argument("--eval-episodes", type=int)
    train.add_argument("--checkpoint-freq", type=int, help="checkpoint every N steps")
    train.add_argument("--baseline-episodes", type=int, help="episodes per baseline in report.md")
    train.add_argument(
        "--warm-start",
        action="store_true",
        default=None,
        help="before PPO, train the policy and critic on the env's expert (the baseline its "
        "EXPERT names, else its oracle) in the training env, then keep a behaviour-cloning "
        "term that decays to 0; the config's warm_start group tunes it",
    )
    train.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this model folder's weights (e.g. one rlagent learn wrote); the run's "
        "settings must build the same env, encoder and layers",
    )
    group = train.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue (or finish) the run in --out from its last checkpoint, with its saved "
        "settings; --timesteps changes its budget",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier run in --out first (only a directory rlagent train wrote)",
    )
    train.add_argument(
        "--trust",
        action="store_true",
        help="with --resume: allow a run written by an earlier rlagent, whose checkpoints hold "
        "pickles (model.zip, state.pkl) that run code when loaded; only for runs you trust",
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--json", action="store_true", help="print a JSON summary")

    ev = sub.add_parser("evaluate", help="evaluate a model or a baseline policy")
    ev.add_argument(
        "agent",
        help="a model directory (DIR/model of a run), a Stable-Baselines3 .zip with --trust, or "
        "a baseline name: random | heuristic | oracle ...",
    )
    _add_env(ev, required=False)
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--planner", choices=["mcts"], help="plan at decision time (models only)")
    ev.add_argument(
        "--simulations",
        type=int,
        help="MCTS simulations per step (beats the planner settings' num_simulations; "
        "default: theirs, else 100)",
    )
    ev.add_argument(
        "--planner-config",
        metavar="FILE",
        help="YAML of MCTSConfig settings that change the planner's defaults "
        "(e.g. max_depth: 1); default: the env's bundled planner settings, if any",
    )
    ev.add_argument(
        "--belief",
        choices=["learned", "env"],
        help="the planner's belief over hidden state: learned (from what the model reads; "
        "the default where the env supports it) or env (the env's exact likelihood: for "
        "customer service a perfect-model upper bound that reads the labels)",
    )
    ev.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also evaluate the env's baselines (default: on for models)",
    )
    ev.add_argument("--stochastic", action="store_true", help="sample model actions")
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ev.add_argument(
        "--trust",
        action="store_true",
        help="allow loading a pickled model (.zip): it runs code stored in the file, so only "
        "for files you trust; `rlagent export` converts one once",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON object")

    export = sub.add_parser(
        "export",
        help="convert a Stable-Baselines3 .zip you trust into a model directory",
        description="Convert MODEL.zip (a Stable-Baselines3 model, as older rlagent versions "
        "wrote) into the model directory OUT: JSON and safetensors, which load without running "
        "any code from the files. Reading MODEL.zip unpickles it, which runs code stored in it: "
        "running this command is your statement that you trust the file, so export only files "
        "from a source you trust.",
    )
    export.add_argument("model", metavar="MODEL.zip", help="the .zip to convert (trusted)")
    export.add_argument("out", metavar="OUT", help="the model directory to write")
    export.add_argument(
        "--include-optimizer",
        action="store_true",
        help="keep the optimizer state too, to continue training from the model",
    )

    bench = sub.add_parser("bench", help="measure speed")
    bench.add_argument("target", choices=["encoder", "env", "mcts", "serve"])
    bench.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    bench.add_argument("--encoder", default="default")
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--quick", action="store_true", help="small budgets (smoke test)")
    bench.add_argument(
        "--dtypes",
        nargs="+",
        metavar="DTYPE",
        help="encoder: measure texts/s of these encoder dtypes instead of PPO frames/s "
        "(fp32 bf16 int8; diagnostics int8-all onnx-fp32), as ratios to fp32",
    )
    bench.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[1, 32],
        metavar="N",
        help="with --dtypes: texts per encoder call (default 1 32)",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    add_bench_serve_options(bench)

    tune = sub.add_parser("tune", help="search PPO and encoder hyperparameters")
    _add_env(tune, required=True)
    tune.add_argument("--trials", type=int, required=True)
    tune.add_argument("--timesteps", type=int, help="steps per trial")
    tune.add_argument("--storage", help="database URL or journal file (shared by processes)")
    tune.add_argument("--study-name", default=None)
    tune.add_argument("--backend", choices=["optuna", "ray"], default="optuna")
    tune.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    tune.add_argument("--pruner", choices=["median", "halving", "none"], default="median")
    tune.add_argument("--encoder")
    tune.add_argument("--encoder-layers", type=int, nargs="+", metavar="N")
    tune.add_argument("--n-envs", type=int)
    tune.add_argument("--device", choices=["auto", "cpu", "cuda"])
    tune.add_argument("--config", help="YAML file of settings overriding the env's defaults")
    tune.add_argument("--n-evaluations", type=int, default=4, help="evaluations per trial")
    tune.add_argument("--timeout", type=float, help="stop starting trials after this many s")
    tune.add_argument("--ray-address", help="address of a running Ray cluster (--backend ray)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--eval-episodes", type=int)
    tune.add_argument("--out", default=None, help="folder for the summary and plot")
    tune.add_argument("--json", action="store_true", help="print a JSON summary")

    add_finetune_parser(sub)
    add_serving_parsers(sub, _add_env)
    add_dataset_parsers(sub, _add_env)
    return parser


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _resume_command(out: str) -> str:
    """The command that continues the run in ``out``, runnable as printed."""
    return f"rlagent train --resume --out {shlex.quote(out)}"


def _cmd_train(args: argparse.Namespace) -> int:
    from rlagent.training import ConfigError, load_config, parse_kwargs, resume_config, train
    from rlagent.training.checkpoints import list_checkpoints
    from rlagent.training.config import check_config_names

    settings = dict(
        n_timesteps=args.timesteps,
        encoder=args.encoder,
        encoder_mode=args.encoder_mode,
        encoder_layers=args.encoder_layers,
        encoder_dtype=args.encoder_dtype,
        n_envs=args.n_envs,
        seed=args.seed,
        device=args.device,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        checkpoint_freq=args.checkpoint_freq,
        baseline_episodes=args.baseline_episodes,
        warm_start={"enabled": True} if args.warm_start else None,
        init_model=args.init,
    )
    if args.env is None and not args.resume:
        raise ConfigError(
            "--env is required to start a run (with --resume it is read from the run's config.yaml)"
        )
    if args.env is None and args.out is None:
        raise ConfigError("--resume needs --out DIR, the run directory to continue")
    out = args.out or f"runs/{args.env.split('/')[-1]}"
    env_kwargs = parse_kwargs(args.env_kwargs)
    if args.resume:
        config = resume_config(
            out, config_file=args.config, env_kwargs=env_kwargs, env_id=args.env, **settings
        )
    else:
        config = load_config(args.env, config_file=args.config, env_kwargs=env_kwargs, **settings)
    # Mistakes fail here, before the run directory is written.
    check_config_names(config, encoder=not args.resume)
    try:
        result = train(
            config,
            out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress_bar=not args.no_progress and sys.stderr.isatty(),
            trust=args.trust,
        )
    except KeyboardInterrupt:
        if list_checkpoints(Path(out) / "checkpoints", verify=False):
            print(f"Interrupted; continue with: {_resume_command(out)}", file=sys.stderr)
        else:
            print("Interrupted before the first checkpoint; nothing was kept.", file=sys.stderr)
        return 128 + int(signal.SIGINT)
    if args.json:
        _print_json(result.metrics)
    elif result.already_finished:
        print(
            f"Run {out} is already finished at {result.timesteps} steps (see its report.md); "
            "nothing to do. Add --timesteps N (more steps) to train it longer."
        )
    elif not result.interrupted:
        print((result.out_dir / "report.md").read_text())
    if result.interrupted:
        print(
            f"Interrupted at {result.timesteps} steps; continue with: {_resume_command(out)}",
            file=sys.stderr,
        )
        return 128 + int(signal.SIGINT)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from rlagent.evaluation import (
        baseline_names,
        evaluate,
        format_table,
        load_agent,
        make_env,
    )
    from rlagent.planning import bundled_planner_settings, read_planner_settings, resolve_belief
    from rlagent.training import parse_kwargs

    env_id = args.env
    env_kwargs = parse_kwargs(args.env_kwargs)
    known = make_env(env_id, env_kwargs) if env_id is not None else None
    agent: Any = load_agent(args.agent, known, device=args.device, trust=args.trust)
    if known is not None:
        known.close()
    is_model = not isinstance(agent, str)
    if is_model:
        from rlagent.agents import spec_of

        env_id = env_id or spec_of(agent).get("env_id")
    if env_id is None:
        raise ValueError("--env is required for a model that does not name its env")
    common = dict(env_kwargs=env_kwargs, episodes=args.episodes, seed=args.seed)
    planner_settings = None
    if args.planner_config is not None:
        if args.planner is None:
            raise ValueError("--planner-config needs --planner mcts")
        planner_settings = read_planner_settings(args.planner_config)
    elif args.planner is not None:
        planner_settings = bundled_planner_settings(env_id)
    belief = None
    if args.planner is not None:
        belief = args.belief or (planner_settings or {}).get("belief")
        planned_env = make_env(env_id, env_kwargs)
        belief = resolve_belief(belief, planned_env)
        planned_env.close()
    elif args.belief is not None:
        raise ValueError("--belief needs --planner mcts")
    result = evaluate(
        agent,
        env_id,
        planner=args.planner,
        simulations=args.simulations,
        planner_settings=planner_settings,
        belief=belief,
        deterministic=not args.stochastic,
        name=args.agent,
        **common,
    )
    results = [result]
    with_baselines = args.baselines if args.baselines is not None else is_model
    if with_baselines:
        env = make_env(env_id, env_kwargs)
        results += [
            evaluate(name, env_id, **common) for name in baseline_names(env) if name != args.agent
        ]
    if args.json:
        out = result.to_dict()
        out["env_id"] = env_id
        if belief is not None:
            out["planner"] = args.planner
            out["belief"] = belief
        if len(results) > 1:
            out["baselines"] = {r.name: r.to_dict() for r in results[1:]}
        _print_json(out)
    else:
        title = f"{env_id} {env_kwargs or ''}".strip()
        if belief is not None:
            title += f" (planner {args.planner}, {belief} belief)"
        print(format_table(results, title=title))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from rlagent.agents import export_model

    out = export_model(args.model, args.out, include_optimizer=args.include_optimizer)
    print(f"Wrote {out}; it loads without running code: rlagent evaluate {shlex.quote(str(out))}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.dtypes and args.target != "encoder":
        raise ValueError("--dtypes belongs to `rlagent bench encoder`.")
    if args.target == "encoder" and args.dtypes:
        from rlagent.benchmarks.encoder_dtypes import format_dtype_bench, run_dtype_bench

        result = run_dtype_bench(
            encoder=args.encoder,
            dtypes=args.dtypes,
            batch_sizes=args.batch_sizes,
            repeats=args.repeats,
            quick=args.quick,
        )
        text = format_dtype_bench(result)
    elif args.target == "encoder":
        from rlagent.benchmarks.encoder import format_encoder_bench, run_encoder_bench

        result = run_encoder_bench(
            device=args.device, repeats=args.repeats, encoder=args.encoder, quick=args.quick
        )
        text = format_encoder_bench(result)
    elif args.target == "env":
        from rlagent.benchmarks.env import format_env_bench, run_env_bench

        result = run_env_bench(repeats=args.repeats, quick=args.quick)
        text = format_env_bench(result)
    elif args.target == "serve":
        result, text = bench_serve(args)
    else:
        from rlagent.benchmarks.mcts import format_mcts_bench, run_mcts_bench

        result = run_mcts_bench(quick=args.quick)
        text = format_mcts_bench(result)
    if args.json:
        _print_json(result)
    else:
        print(text)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from rlagent.training import parse_kwargs
    from rlagent.training.tuning import TuneConfig, format_tune_summary, tune

    config = TuneConfig(
        env_id=args.env,
        env_kwargs=parse_kwargs(args.env_kwargs),
        n_trials=args.trials,
        timesteps=args.timesteps,
        storage=args.storage,
        study_name=args.study_name,
        backend=args.backend,
        sampler=args.sampler,
        pruner=args.pruner,
        encoder=args.encoder,
        encoder_layers=args.encoder_layers,
        seed=args.seed,
        eval_episodes=args.eval_episodes,
        out_dir=args.out,
        n_envs=args.n_envs,
        device=args.device,
        config_file=args.config,
        n_evaluations=args.n_evaluations,
        timeout_s=args.timeout,
        ray_address=args.ray_address,
    )
    summary = tune(config)
    if args.json:
        _print_json(summary)
    else:
        print(format_tune_summary(summary))
    return 128 + int(signal.SIGINT) if summary.get("interrupted") else 0


_COMMANDS = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "export": _cmd_export,
    "bench": _cmd_bench,
    "tune": _cmd_tune,
    "finetune": cmd_finetune,
    "serve": cmd_serve,
    "logs": cmd_logs,
    "collect": cmd_collect,
    "ope": cmd_ope,
    "learn": cmd_learn,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rlagent`` console script.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit status.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import rlagent  # noqa: F401  (registers the bundled environments)
    from rlagent.errors import user_errors

    try:
        return _COMMANDS[args.command](args)
    except user_errors() as exc:
        print(f"rlagent {args.command}: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
