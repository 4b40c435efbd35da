"""The ``finetune`` subcommand of ``rlagent``: argument parsing only."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from typing import Any

__all__ = ["add_finetune_parser", "cmd_finetune"]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def add_finetune_parser(sub: Any) -> None:
    """Add ``rlagent finetune`` to the subparsers ``sub``."""
    fin = sub.add_parser(
        "finetune",
        help="fine-tune an encoder with a classification head on labelled text",
        description="Fine-tune an encoder with a linear head on a text,category CSV (or the "
        "built-in corpus) and write a model folder that --encoder DIR accepts everywhere; or, "
        "with --evaluate DIR, score such a folder on labelled text. See docs/finetuning.md.",
    )
    fin.add_argument(
        "--data",
        required=True,
        help="text,category CSV, or 'builtin' (the built-in corpus, no real text)",
    )
    fin.add_argument("--out", help="the output folder to write (new or empty)")
    fin.add_argument(
        "--evaluate",
        metavar="DIR",
        help="score the classifier in DIR (an earlier --out) on --data instead of training",
    )
    fin.add_argument("--eval-data", metavar="CSV", help="test data scored once after training")
    fin.add_argument("--lora", action="store_true", help="train LoRA adapters (needs peft)")
    fin.add_argument("--lora-r", type=int, metavar="R", help="LoRA rank (default 8)")
    fin.add_argument("--lora-alpha", type=int, metavar="A", help="LoRA scale (default 16)")
    fin.add_argument(
        "--lora-targets",
        nargs="+",
        metavar="NAME",
        help="modules that get adapters (default: query key value; add dense for all linear)",
    )
    fin.add_argument("--encoder", help="default | tiny-random | local folder | hub id")
    fin.add_argument("--labels", choices=["category", "group"], help="what the head predicts")
    fin.add_argument("--groups", metavar="FILE", help="JSON category -> group mapping")
    fin.add_argument("--epochs", type=int, help="most fine-tuning epochs (0: linear probe only)")
    fin.add_argument("--head-epochs", type=int, help="linear-probe epochs first (0: none)")
    fin.add_argument("--learning-rate", type=float)
    fin.add_argument("--batch-size", type=int)
    fin.add_argument("--max-length", type=int, help="tokens kept per text")
    fin.add_argument("--val-fraction", type=float, help="share of each category held out")
    fin.add_argument("--seed", type=int)
    fin.add_argument("--device", choices=["auto", "cpu", "cuda"])
    fin.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier output in --out (only a folder rlagent finetune wrote)",
    )
    fin.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    fin.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_finetune(args: argparse.Namespace) -> int:
    """Run ``rlagent finetune``."""
    from rlagent.finetuning import FinetuneConfig, evaluate_classifier, finetune

    if args.evaluate is not None:
        if args.out is not None:
            raise ValueError(
                "--evaluate scores an existing classifier and writes nothing: drop --out (or "
                "drop --evaluate to fine-tune into --out)"
            )
        scores = evaluate_classifier(
            args.evaluate, args.data, groups=args.groups, device=args.device or "auto"
        )
        if args.json:
            _print_json(scores)
        else:
            print(
                ", ".join(
                    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in scores.items()
                )
            )
        return 0
    if args.out is None:
        raise ValueError("--out DIR is required to fine-tune (or pass --evaluate DIR to score)")
    settings = dict(
        encoder=args.encoder,
        mode="lora" if args.lora else None,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_target_modules=args.lora_targets,
        labels=args.labels,
        groups=args.groups,
        epochs=args.epochs,
        head_epochs=args.head_epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
    )
    config = FinetuneConfig(**{k: v for k, v in settings.items() if v is not None})
    try:
        result = finetune(
            args.data,
            args.out,
            config=config,
            eval_data=args.eval_data,
            overwrite=args.overwrite,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except KeyboardInterrupt:
        print("Interrupted; what the run wrote was removed.", file=sys.stderr)
        return 128 + int(signal.SIGINT)
    if args.json:
        _print_json(result.to_dict())
        return 0
    for name, score in result.scores.items():
        if score:
            print(
                f"{name}: accuracy {score['accuracy']:.4f}, macro-F1 {score['macro_f1']:.4f}"
                f" ({score['n']} rows)"
            )
    out = shlex.quote(str(result.out))
    print(
        f"Wrote {out} in {result.wall_time_s:.0f} s (model card: {out}/README.md). Use it with "
        f"--encoder {out}, or score it: rlagent finetune --evaluate {out} --data CSV --json"
    )
    return 0
