"""Supervised fine-tuning of an encoder on labelled text: :func:`finetune`.

The training itself is the Hugging Face ``Trainer``'s (AdamW, linear warm-up and decay,
evaluation each epoch, the best epoch kept, early stopping); this module only prepares the
data, the model and the output folder around it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlagent.encoders import load_encoder, resolve_encoder_path
from rlagent.finetuning.card import write_model_card
from rlagent.finetuning.classifier import TextClassifier, load_classifier
from rlagent.finetuning.config import FinetuneConfig, resolve_device
from rlagent.finetuning.data import (
    BUILTIN,
    LabelledData,
    describe_source,
    prepare_data,
    read_rows,
)
from rlagent.finetuning.errors import FinetuneConfigError
from rlagent.finetuning.evaluation import classification_scores, evaluate_classifier
from rlagent.finetuning.model import (
    ClassifierHead,
    EncoderClassifier,
    ProbeModel,
    add_lora,
    embed_texts,
    merge_lora,
)
from rlagent.finetuning.saving import (
    RESULTS,
    SCRATCH,
    discard_failed_output,
    prepare_output,
    write_classifier,
    write_json,
)

__all__ = ["FinetuneResult", "finetune"]


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`finetune` wrote and measured.

    Attributes:
        out: The output folder (use it as ``--encoder DIR``, or with
            :func:`~rlagent.finetuning.load_classifier`).
        scores: ``{"validation": {...}, "test": {...} or None, "probe_validation": {...}}``,
            each ``{"accuracy", "macro_f1", "n"}`` (test may add ``"group_accuracy"``).
        history: One entry per fine-tuning epoch: ``epoch``, ``train_loss``,
            ``eval_loss``, ``eval_accuracy``, ``eval_macro_f1`` (what was measured).
        best_epoch: The epoch kept (by validation accuracy), ``None`` without validation.
        train_steps: Optimizer steps of the fine-tuning phase.
        seconds_per_step: Wall seconds per fine-tuning step (evaluations included).
        wall_time_s: Wall seconds of the whole call.
        device: ``"cpu"`` or ``"cuda"``.
    """

    out: Path
    scores: dict[str, Any]
    history: list[dict[str, Any]]
    best_epoch: int | None
    train_steps: int
    seconds_per_step: float | None
    wall_time_s: float
    device: str

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "out": str(self.out),
            "scores": self.scores,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "train_steps": self.train_steps,
            "seconds_per_step": self.seconds_per_step,
            "wall_time_s": self.wall_time_s,
            "device": self.device,
        }


def _progress_callback(description: str) -> Any:
    from transformers.trainer_callback import ProgressCallback

    class _Progress(ProgressCallback):
        """Trainer's progress bar, with the latest scores beside it instead of printed."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            from tqdm.auto import tqdm

            if state.is_world_process_zero:
                self.training_bar = tqdm(
                    total=state.max_steps, desc=description, dynamic_ncols=True
                )
            self.current_step = 0

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if self.training_bar is None or not logs:
                return
            shown = {k: v for k, v in logs.items() if k in ("loss", "eval_accuracy")}
            if shown:
                self.training_bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})

    return _Progress()


def _trainer(model: torch.nn.Module, args: Any, *, progress: bool, description: str, **kw: Any):
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer = Trainer(model=model, args=args, **kw)
    trainer.remove_callback(PrinterCallback)  # it prints every log line to stdout
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(_progress_callback(description))
    return trainer


def _arguments(config: FinetuneConfig, output_dir: Path, device: str, **kw: Any) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=2 * config.batch_size,
        lr_scheduler_type="linear",
        report_to="none",
        use_cpu=device == "cpu",
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=0,
        **kw,
    )


def _compute_metrics(prediction: Any) -> dict[str, float]:
    logits = prediction.predictions
    if isinstance(logits, tuple):
        logits = logits[0]
    scores = classification_scores(prediction.label_ids, np.asarray(logits).argmax(axis=-1))
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def _new_head(hidden: int, num_labels: int, config: FinetuneConfig) -> ClassifierHead:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return ClassifierHead(hidden, num_labels, dropout=config.dropout)


def _linear_probe(
    encoder: Any,
    data: LabelledData,
    config: FinetuneConfig,
    scratch: Path,
    device: str,
    *,
    progress: bool,
) -> tuple[ClassifierHead, dict[str, Any] | None, float]:
    """Train the head alone on the frozen encoder's embeddings: (head, val scores, seconds)."""
    head = _new_head(encoder.hidden_size, len(data.label_names), config)
    if config.head_epochs == 0:
        return head, None, 0.0
    start = time.perf_counter()
    embed = dict(
        max_length=config.max_length,
        pooling=config.pooling,
        batch_size=2 * config.batch_size,
        device=device,
        progress=progress,
    )
    train_x = embed_texts(encoder.model, encoder.tokenizer, data.train_texts, **embed)
    rows = [
        {"features": x, "labels": int(y)}
        for x, y in zip(train_x, data.train_labels.tolist(), strict=True)
    ]
    args = _arguments(
        config,
        scratch / "probe",
        device,
        num_train_epochs=config.head_epochs,
        learning_rate=config.head_learning_rate,
        weight_decay=0.0,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="epoch",
        disable_tqdm=True,
    )
    from transformers import default_data_collator

    _trainer(
        ProbeModel(head),
        args,
        progress=progress,
        description="linear probe",
        train_dataset=rows,
        data_collator=default_data_collator,
    ).train()
    head = head.cpu().eval()
    scores = None
    if data.val_texts:
        val_x = embed_texts(encoder.model, encoder.tokenizer, data.val_texts, **embed)
        with torch.no_grad():
            predicted = head(val_x).argmax(dim=-1).numpy()
        scores = classification_scores(data.val_labels, predicted)
    return head, scores, time.perf_counter() - start


def _encode(tokenizer: Any, texts: Sequence[str], labels: np.ndarray, max_length: int) -> list:
    tokens = tokenizer(list(texts), truncation=True, max_length=max_length)
    keys = list(tokens.keys())
    return [
        {**{key: tokens[key][i] for key in keys}, "labels": int(label)}
        for i, label in enumerate(labels.tolist())
    ]


def _history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per epoch from the Trainer's log: losses and validation scores."""
    epochs: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        row = epochs.setdefault(round(entry["epoch"]), {"epoch": round(entry["epoch"])})
        if "loss" in entry:
            row["train_loss"] = entry["loss"]
        for key in ("eval_loss", "eval_accuracy", "eval_macro_f1"):
            if key in entry:
                row[key] = entry[key]
    return [epochs[k] for k in sorted(epochs) if len(epochs[k]) > 1]


def _fine_tune(
    encoder: Any,
    head: ClassifierHead,
    data: LabelledData,
    config: FinetuneConfig,
    scratch: Path,
    device: str,
    *,
    progress: bool,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The fine-tuning phase: (trained encoder with LoRA merged, facts about the run)."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback

    model_encoder = encoder.model
    if config.mode == "lora":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model_encoder = add_lora(model_encoder, config)
    model = EncoderClassifier(model_encoder, head, pooling=config.pooling)
    has_val = bool(data.val_texts)
    strategy = "epoch" if has_val else "no"
    args = _arguments(
        config,
        scratch / "finetune",
        device,
        num_train_epochs=config.epochs,
        learning_rate=config.resolved_learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        eval_strategy=strategy,
        save_strategy=strategy,
        save_only_model=True,
        save_total_limit=1,
        load_best_model_at_end=has_val,
        metric_for_best_model="accuracy" if has_val else None,
        greater_is_better=True,
        logging_strategy="epoch",
        disable_tqdm=True,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )
    callbacks = []
    if has_val and config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    trainer = _trainer(
        model,
        args,
        progress=progress,
        description="fine-tuning" if config.mode == "full" else "fine-tuning (LoRA)",
        train_dataset=_encode(
            encoder.tokenizer, data.train_texts, data.train_labels, config.max_length
        ),
        eval_dataset=(
            _encode(encoder.tokenizer, data.val_texts, data.val_labels, config.max_length)
            if has_val
            else None
        ),
        data_collator=DataCollatorWithPadding(encoder.tokenizer, pad_to_multiple_of=8),
        compute_metrics=_compute_metrics if has_val else None,
        callbacks=callbacks,
    )
    output = trainer.train()
    history = _history(trainer.state.log_history)
    best = trainer.state.best_metric
    best_epoch = next((h["epoch"] for h in history if h.get("eval_accuracy") == best), None)
    runtime = float(output.metrics.get("train_runtime", 0.0))
    steps = int(output.global_step)
    facts = {
        "history": history,
        "best_epoch": best_epoch,
        "train_steps": steps,
        "finetune_seconds": runtime,
        "seconds_per_step": runtime / steps if steps else None,
    }
    model.cpu()
    return merge_lora(model.encoder), facts


def _check_inputs(data: Any, out: Path, config: FinetuneConfig) -> None:
    if not isinstance(config, FinetuneConfig):
        raise FinetuneConfigError(
            f"config must be a FinetuneConfig, got {type(config).__name__}; build one with "
            "FinetuneConfig(epochs=..., ...)."
        )
    if not isinstance(data, str | os.PathLike):
        raise FinetuneConfigError(
            f"data must be a CSV path or 'builtin', got {type(data).__name__}."
        )
    folder = resolve_encoder_path(os.fspath(config.encoder))
    if folder is not None and out.resolve() == folder.resolve():
        raise FinetuneConfigError(
            f"out={str(out)!r} is the encoder's own folder; write the fine-tuned model to "
            "another --out (the encoder is read while the output is written)."
        )
    try:
        import accelerate  # noqa: F401  (the Trainer needs it)
    except ImportError as err:
        raise ImportError(
            "rlagent finetune trains with the Hugging Face Trainer, which needs the accelerate "
            "package: pip install 'rlagent[finetune]' (or pip install 'accelerate>=0.26')."
        ) from err
    if config.mode == "lora":
        from rlagent.finetuning.model import _import_peft

        _import_peft()


def finetune(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: FinetuneConfig | None = None,
    eval_data: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune an encoder with a linear head on labelled text, and save both.

    A linear probe trains the head on the frozen encoder first (``config.head_epochs``), then
    the Hugging Face ``Trainer`` fine-tunes everything (or LoRA adapters, merged at the end)
    for up to ``config.epochs`` epochs, keeping the epoch with the best validation accuracy.
    ``out`` becomes a standard model folder that ``--encoder DIR`` (and
    :func:`rlagent.encoders.load_encoder`, ``AutoModel.from_pretrained``) reads, with the head
    (``classifier.safetensors``, ``classifier.json``), ``finetune.json`` and a model card.
    Nothing is downloaded.

    Args:
        data: A ``text,category`` CSV (its validation rows are those the env's
            ``split="val"`` uses) or ``"builtin"`` (the built-in corpus, no real text).
        out: Output folder; new or empty, or an earlier output with ``overwrite``.
        config: Settings (default ``FinetuneConfig()``).
        eval_data: Optional test data (a CSV or ``"builtin"``, its test split), scored once
            after training with :func:`~rlagent.finetuning.evaluate_classifier`.
        overwrite: Replace an earlier fine-tuning output in ``out`` (never another folder).
        progress: Show progress bars (on stderr).

    Returns:
        The :class:`FinetuneResult`.

    Raises:
        FinetuneConfigError: A bad setting, ``out`` equal to the encoder's folder, or CUDA
            asked for and absent.
        DatasetNotFoundError: A data file or group mapping does not exist.
        DatasetFormatError: A data file is malformed (the message names file and line).
        FinetuneDataError: Fewer than two labels, or ``groups`` with ``"builtin"``.
        EncoderNotFoundError: The encoder cannot be found on this machine.
        FinetuneOutputExistsError: ``out`` is not empty and ``overwrite`` is not set.
        ForeignOutputError: ``overwrite`` is set but ``out`` is not a fine-tuning output.
        ImportError: ``mode="lora"`` without ``peft`` (with the install command).
    """
    config = FinetuneConfig() if config is None else config
    out = Path(out)
    start = time.perf_counter()
    _check_inputs(data, out, config)
    device = resolve_device(config.device)
    prepared = prepare_data(data, config)
    eval_rows = None
    if eval_data is not None:
        eval_rows = read_rows(eval_data, fillings=config.builtin_fillings, seed=config.seed)
    encoder = load_encoder(os.fspath(config.encoder), device=device)
    created = prepare_output(out, overwrite=overwrite)
    scratch = out / SCRATCH
    try:
        head, probe_scores, probe_seconds = _linear_probe(
            encoder, prepared, config, scratch, device, progress=progress
        )
        facts: dict[str, Any] = {
            "history": [],
            "best_epoch": None,
            "train_steps": 0,
            "finetune_seconds": 0.0,
            "seconds_per_step": None,
        }
        trained = encoder.model
        if config.epochs > 0:
            trained, facts = _fine_tune(
                encoder, head, prepared, config, scratch, device, progress=progress
            )
        shutil.rmtree(scratch, ignore_errors=True)
        _save_encoder(trained, encoder.tokenizer, out)
        write_classifier(out, head.linear, _description(prepared, config, encoder))
        classifier = load_classifier(out, device=device)
        scores = {
            "probe_validation": probe_scores,
            "validation": _validation_scores(classifier, prepared),
            "test": None,
        }
        if eval_rows is not None:
            scores["test"] = evaluate_classifier(classifier, eval_rows)
        wall = time.perf_counter() - start
        results = _results(
            prepared,
            config,
            encoder,
            eval_data,
            eval_rows,
            scores,
            facts,
            device,
            wall,
            probe_seconds,
        )
        write_json(out / RESULTS, results)
        write_model_card(out, results)
    except BaseException:
        discard_failed_output(out, created)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return FinetuneResult(
        out=out,
        scores=scores,
        history=facts["history"],
        best_epoch=facts["best_epoch"],
        train_steps=facts["train_steps"],
        seconds_per_step=facts["seconds_per_step"],
        wall_time_s=wall,
        device=device,
    )


def _save_encoder(model: torch.nn.Module, tokenizer: Any, out: Path) -> None:
    """``save_pretrained`` of the encoder and its tokenizer, without a progress bar."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.cpu().save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


def _validation_scores(classifier: TextClassifier, data: LabelledData) -> dict[str, Any] | None:
    if not data.val_texts:
        return None
    predicted = classifier.predict_proba(list(data.val_texts)).argmax(axis=1)
    return classification_scores(data.val_labels, predicted)


def _description(data: LabelledData, config: FinetuneConfig, encoder: Any) -> dict[str, Any]:
    from rlagent import __version__

    return {
        "labels": list(data.label_names),
        "label_kind": data.label_kind,
        "pooling": config.pooling,
        "max_length": config.max_length,
        "groups": data.groups,
        "base_encoder": {
            "name": encoder.name,
            "checksum": encoder.checksum,
        },
        "mode": config.mode,
        "rlagent_version": __version__,
    }


def _builtin_split(data: Any) -> dict[str, str]:
    return {"split": "test"} if isinstance(data, str) and data == BUILTIN else {}


def _results(
    data: LabelledData,
    config: FinetuneConfig,
    encoder: Any,
    eval_data: Any,
    eval_rows: list | None,
    scores: dict[str, Any],
    facts: dict[str, Any],
    device: str,
    wall: float,
    probe_seconds: float,
) -> dict[str, Any]:
    import transformers

    from rlagent import __version__

    try:
        import peft

        peft_version = peft.__version__
    except ImportError:
        peft_version = None
    return {
        "rlagent_version": __version__,
        "settings": config.to_dict(),
        "base_encoder": {"name": encoder.name, "path": encoder.path, "checksum": encoder.checksum},
        "labels": {"kind": data.label_kind, "count": len(data.label_names)},
        "data": data.sources,
        "eval_data": (
            None
            if eval_data is None
            else describe_source(eval_data, len(eval_rows or []), **_builtin_split(eval_data))
        ),
        "scores": scores,
        **facts,
        "probe_seconds": probe_seconds,
        "wall_time_s": wall,
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft_version,
        },
    }
