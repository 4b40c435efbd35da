"""The model card (``README.md``) of a fine-tuning output: data, settings, scores, run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["model_card", "write_model_card"]

_KINDS = {"category": "categories", "group": "groups"}


def _score_rows(scores: dict[str, Any]) -> list[str]:
    names = {
        "probe_validation": "validation, after the linear probe",
        "validation": "validation (model kept)",
        "test": "test (--eval-data)",
    }
    rows = []
    for key, label in names.items():
        score = scores.get(key)
        if not score:
            continue
        group = score.get("group_accuracy")
        group_text = "" if group is None else f"{group:.4f}"
        rows.append(
            f"| {label} | {score['accuracy']:.4f} | {score['macro_f1']:.4f} | {group_text} "
            f"| {score['n']} |"
        )
    return rows


def _data_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    data = results["data"]
    parts = [("training file", data.get("train"))]
    if "validation" in data:
        parts = [("training", data["train"]), ("validation", data["validation"])]
    if results.get("eval_data"):
        parts.append(("test (--eval-data)", results["eval_data"]))
    for label, source in parts:
        if not source:
            continue
        where = source["source"]
        if "split" in source:
            where += f" (split {source['split']})"
        rows.append(f"| {label} | `{where}` | {source['rows']} | {source.get('sha256', '')} |")
    return rows


def model_card(results: dict[str, Any]) -> str:
    """The Markdown model card of a run, from what ``finetune.json`` holds."""
    settings = results["settings"]
    labels = results["labels"]
    base = results["base_encoder"]
    how = (
        "with LoRA adapters merged into its weights"
        if settings["mode"] == "lora"
        else "every weight trained"
    )
    lines = [
        "---",
        "library_name: transformers",
        "tags: [rlagent, text-classification, bert]",
        "---",
        "",
        f"# Encoder fine-tuned to classify {_KINDS[labels['kind']]} ({labels['count']} labels)",
        "",
        f"Written by `rlagent finetune` (rlagent {results['rlagent_version']}) from the encoder "
        f"`{base['name']}` (weights sha256 {base['checksum'][:16]}...), {how}.",
        "",
        "This is a standard Hugging Face model folder: `rlagent train --encoder DIR`, "
        "`rlagent.encoders.load_encoder(DIR)` and `AutoModel.from_pretrained(DIR)` read it. "
        "The classification head is in `classifier.safetensors` and `classifier.json`; "
        "`rlagent.finetuning.load_classifier(DIR)` reads both, and "
        "`rlagent finetune --evaluate DIR --data CSV --json` scores it.",
        "",
        "## Data",
        "",
        "| part | source | rows | sha256 |",
        "|---|---|---:|---|",
        *_data_rows(results),
    ]
    split = results["data"].get("split")
    if split:
        lines += [
            "",
            f"The training file was split by `envs.customer_service.dataset.validation_split` "
            f"(val_fraction {split['val_fraction']}): {split['train_rows']} rows for training, "
            f"{split['validation_rows']} for validation, the same rows as the env's "
            '`split="val"`.',
        ]
    lines += [
        "",
        "## Scores",
        "",
        "| rows | accuracy | macro-F1 | group accuracy | n |",
        "|---|---:|---:|---:|---:|",
        *_score_rows(results["scores"]),
    ]
    history = results.get("history") or []
    if history:
        lines += [
            "",
            "## Fine-tuning epochs",
            "",
            "| epoch | train loss | validation loss | validation accuracy | validation macro-F1 |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in history:
            cells = [
                row.get(k) for k in ("train_loss", "eval_loss", "eval_accuracy", "eval_macro_f1")
            ]
            text = " | ".join("" if c is None else f"{c:.4f}" for c in cells)
            lines.append(f"| {row['epoch']} | {text} |")
        if results.get("best_epoch") is not None:
            lines += ["", f"Kept: epoch {results['best_epoch']} (best validation accuracy)."]
    per_step = results.get("seconds_per_step")
    lines += [
        "",
        "## Run",
        "",
        f"- wall time: {results['wall_time_s']:.1f} s (linear probe "
        f"{results['probe_seconds']:.1f} s, fine-tuning {results['finetune_seconds']:.1f} s, "
        f"{results['train_steps']} steps"
        + (f", {per_step:.3f} s per step" if per_step else "")
        + ")",
        f"- device: {results['device_name']} ({results['torch_threads']} torch threads)",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v is not None),
        "",
        "## Settings",
        "",
        *[f"- {key}: `{value}`" for key, value in settings.items()],
        "",
    ]
    return "\n".join(lines)


def write_model_card(out: Path, results: dict[str, Any]) -> None:
    """Write ``README.md`` into ``out``."""
    (out / "README.md").write_text(model_card(results), encoding="utf-8")
