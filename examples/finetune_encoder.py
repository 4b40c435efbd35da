"""Fine-tune the text encoder on labelled utterances, then use it as an agent's encoder.

Trains the default encoder (all-MiniLM-L6-v2) with a linear head on Banking77's train.csv: a
linear probe first, then every weight (or LoRA adapters with --lora). The held-out tenth of
each category -- the same rows as the env's ``split="val"`` -- picks the best epoch; test.csv
is scored once at the end. The output folder is a standard model folder: pass it as
``--encoder DIR`` to ``rlagent train`` (or ``encoder=DIR`` anywhere in Python).

    python examples/finetune_encoder.py --data ../shared/data/banking77
    python examples/finetune_encoder.py --data ../shared/data/banking77 --lora
    python examples/finetune_encoder.py --quick   # seconds: tiny random encoder, built-in corpus

--out must be new or empty; --overwrite replaces an earlier output there (only a folder that
rlagent finetune wrote).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlagent.finetuning import (
    FinetuneConfig,
    FinetuneConfigError,
    FinetuneOutputExistsError,
    finetune,
    load_classifier,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77"
EXAMPLES = ["I still haven't received my new card", "Can I get my money back for this order?"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the CSVs")
    parser.add_argument("--out", default="runs/finetuned-encoder")
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters (needs peft)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny random encoder, built-in text")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier output")
    args = parser.parse_args()
    mode = "lora" if args.lora else "full"
    if args.quick:
        data, eval_data = "builtin", "builtin"  # no real text: the simulator's own corpus
        config = FinetuneConfig(
            encoder="tiny-random",
            mode=mode,
            labels="group",
            epochs=1,
            head_epochs=1,
            builtin_fillings=1,
            max_length=32,
        )
    else:
        data, eval_data = args.data / "train.csv", args.data / "test.csv"
        if not (data.is_file() and eval_data.is_file()):
            parser.exit(
                2,
                f"{parser.prog}: error: Banking77 not found in {args.data}: pass "
                "--data FOLDER holding train.csv and test.csv (columns text,category).\n",
            )
        config = FinetuneConfig(mode=mode, epochs=args.epochs)
    try:
        result = finetune(
            data, args.out, config=config, eval_data=eval_data, overwrite=args.overwrite
        )
    except (FinetuneOutputExistsError, FinetuneConfigError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    for name, score in result.scores.items():
        if score:
            print(f"{name:>16}: accuracy {score['accuracy']:.3f}, macro-F1 {score['macro_f1']:.3f}")
    classifier = load_classifier(result.out)
    for text, proba in zip(EXAMPLES, classifier.predict_proba(EXAMPLES), strict=True):
        print(f"{text!r} -> {classifier.labels[proba.argmax()]} ({proba.max():.2f})")
    print(
        f"train an agent that reads with it: rlagent train --env rlagent/CustomerService-v0 "
        f"--encoder {result.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
