"""The settings of a supervised fine-tuning run: :class:`FinetuneConfig`."""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rlagent.finetuning.errors import FinetuneConfigError

__all__ = [
    "DEVICES",
    "LABEL_KINDS",
    "MODES",
    "POOLINGS",
    "FinetuneConfig",
    "resolve_device",
]

#: ``mode``: train every encoder weight, or low-rank adapters merged into them at the end.
MODES: tuple[str, ...] = ("full", "lora")
#: ``labels``: what the head predicts, the CSV's category or the category's group.
LABEL_KINDS: tuple[str, ...] = ("category", "group")
#: ``pooling``: mean of the token embeddings under the attention mask, or the [CLS] token's.
POOLINGS: tuple[str, ...] = ("mean", "cls")
#: ``device`` values.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: The learning rate of the fine-tuning phase when ``learning_rate`` is ``None``, per mode.
DEFAULT_LEARNING_RATES: dict[str, float] = {"full": 5e-5, "lora": 5e-4}


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`rlagent.finetuning.finetune`; checked when the config is built.

    Training runs in two phases ("LP-FT"): a linear probe first trains only the head on the
    frozen encoder's embeddings (``head_epochs`` epochs at ``head_learning_rate``), then the
    whole model (``mode="full"``) or the head plus LoRA adapters (``mode="lora"``) is
    fine-tuned for up to ``epochs`` epochs at ``learning_rate``, evaluated on the validation
    rows after each epoch; the best epoch by validation accuracy is kept, and training stops
    after ``early_stopping_patience`` epochs without improvement. Starting the fine-tuning
    phase from a trained head keeps the random head's large early gradients from disturbing
    the pretrained features.

    Attributes:
        encoder: Encoder to start from: ``"default"``, ``"tiny-random"``, a local folder (an
            earlier fine-tuning output too) or a hub id in the local cache.
        mode: ``"full"`` (every weight) or ``"lora"`` (low-rank adapters on the attention
            projections, merged into the weights before saving; needs ``peft``).
        labels: ``"category"`` (the CSV's category column) or ``"group"`` (the category's
            group under ``groups``).
        groups: Category -> group mapping: a dict, a JSON file path, or ``None`` for the
            bundled Banking77 mapping. Needed for ``labels="group"``; with
            ``labels="category"`` it is saved with the classifier when it maps every category
            (so group probabilities can be read from it).
        epochs: Most epochs of the fine-tuning phase (0: the linear probe only, encoder
            unchanged).
        learning_rate: Peak learning rate of the fine-tuning phase (AdamW, linear warm-up
            and decay); ``None``: 5e-5 for ``"full"``, 5e-4 for ``"lora"``.
        head_learning_rate: Learning rate of the linear-probe phase.
        head_epochs: Epochs of the linear-probe phase (0 skips it: the head starts random).
            The embeddings are computed once, so an epoch costs well under a second on
            Banking77; on its validation rows the probe reached 0.900 accuracy after 2 epochs
            at 3e-3 and 0.915-0.917 from 5 epochs on, at 3e-3 or 1e-2.
        batch_size: Training batch size (evaluation uses twice as many).
        max_length: Tokens kept per text (longer texts are truncated).
        weight_decay: AdamW weight decay of the fine-tuning phase.
        warmup_ratio: Share of the fine-tuning steps spent warming the learning rate up.
        val_fraction: Share of each category's distinct texts of a CSV held out for
            validation (:func:`envs.customer_service.dataset.validation_split`, the rows the
            env's ``split="val"`` uses); 0 holds out nothing (no early stopping, the last
            epoch is kept). Unused with ``data="builtin"``, whose validation rows are the
            built-in corpus's val split.
        early_stopping_patience: Epochs without a better validation accuracy before the
            fine-tuning phase stops (0: never stop early).
        seed: Seed of the head's initialisation, the batch order, dropout and the slot
            fillings of ``data="builtin"``.
        dropout: Dropout before the linear head.
        pooling: ``"mean"`` (the default MiniLM is a mean-pooled sentence encoder) or
            ``"cls"``.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator (the update is scaled by ``lora_alpha / lora_r``).
        lora_dropout: Dropout on the LoRA branch.
        lora_target_modules: Names of the modules that get adapters (BERT's attention
            projections by default).
        group_by_length: Batch texts of similar length together (the Trainer's
            ``train_sampling_strategy="group_by_length"``): on Banking77 a step then computes on
            2.7x fewer (padded) tokens, and ran 2.2x faster on one CPU thread.
        builtin_fillings: With ``data="builtin"``, how many seeded slot fillings of each
            template become rows.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    """

    encoder: str = "default"
    mode: str = "full"
    labels: str = "category"
    groups: Mapping[str, str] | str | os.PathLike | None = None
    epochs: int = 3
    learning_rate: float | None = None
    head_learning_rate: float = 1e-2
    head_epochs: int = 10
    batch_size: int = 32
    max_length: int = 64
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    val_fraction: float = 0.1
    early_stopping_patience: int = 2
    seed: int = 0
    dropout: float = 0.1
    pooling: str = "mean"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: tuple[str, ...] = ("query", "key", "value")
    group_by_length: bool = True
    builtin_fillings: int = 4
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, str | os.PathLike) or not os.fspath(self.encoder):
            raise FinetuneConfigError(
                f"encoder={self.encoder!r} must be a name or folder: 'default', 'tiny-random', "
                "a local model folder or a hub id in the local cache."
            )
        _choice("mode", self.mode, MODES)
        _choice("labels", self.labels, LABEL_KINDS)
        _choice("pooling", self.pooling, POOLINGS)
        _choice("device", self.device, DEVICES)
        if not isinstance(self.group_by_length, bool):
            raise FinetuneConfigError(
                f"group_by_length={self.group_by_length!r} must be True or False."
            )
        if self.groups is not None and not isinstance(self.groups, Mapping | str | os.PathLike):
            raise FinetuneConfigError(
                f"groups={self.groups!r} must be a dict {{category: group}}, the path of a "
                "JSON file holding one, or None for the bundled Banking77 mapping."
            )
        for name in ("epochs", "head_epochs", "early_stopping_patience"):
            _integer(name, getattr(self, name), minimum=0)
        for name in ("batch_size", "lora_r", "lora_alpha", "builtin_fillings"):
            _integer(name, getattr(self, name), minimum=1)
        _integer("max_length", self.max_length, minimum=2)
        _integer("seed", self.seed, minimum=0)
        if self.epochs == 0 and self.head_epochs == 0:
            raise FinetuneConfigError(
                "epochs=0 and head_epochs=0 train nothing; give the fine-tuning phase epochs "
                "(e.g. epochs=3) or the linear probe epochs (e.g. head_epochs=10)."
            )
        if self.learning_rate is not None:
            _positive("learning_rate", self.learning_rate)
        _positive("head_learning_rate", self.head_learning_rate)
        for name in ("weight_decay", "warmup_ratio", "val_fraction", "dropout", "lora_dropout"):
            _unit_interval(name, getattr(self, name))
        targets = self.lora_target_modules
        if not isinstance(targets, list | tuple) or not all(
            isinstance(m, str) and m for m in targets
        ):
            raise FinetuneConfigError(
                f"lora_target_modules={self.lora_target_modules!r} must be a sequence of module "
                "names, e.g. ('query', 'key', 'value') for BERT's attention projections."
            )
        object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))
        if not self.lora_target_modules:
            raise FinetuneConfigError(
                "lora_target_modules is empty; name the modules that get adapters, e.g. "
                "('query', 'key', 'value')."
            )

    @property
    def resolved_learning_rate(self) -> float:
        """``learning_rate``, or the mode's default when it is ``None``."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES[self.mode]

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (``groups``: its path, or a note for a dict)."""
        out = asdict(self)
        out["lora_target_modules"] = list(self.lora_target_modules)
        if isinstance(self.groups, Mapping):
            out["groups"] = "(a dict, saved in classifier.json)"
        elif self.groups is not None:
            out["groups"] = os.fspath(self.groups)
        out["encoder"] = os.fspath(self.encoder)
        out["learning_rate"] = self.resolved_learning_rate
        return out


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise FinetuneConfigError(
            f"{name}={value!r} is not one of {', '.join(repr(o) for o in options)}; pass one "
            "of those."
        )


def _integer(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise FinetuneConfigError(
            f"{name}={value!r} must be an integer >= {minimum}; pass e.g. {name}={max(minimum, 1)}."
        )


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise FinetuneConfigError(f"{name}={value!r} must be a number > 0, e.g. {name}=5e-5.")


def _unit_interval(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) < 1.0
    ):
        raise FinetuneConfigError(f"{name}={value!r} must be a number in [0, 1).")


def resolve_device(device: str) -> str:
    """The torch device a run uses: ``"auto"`` is ``"cuda"`` when CUDA is available.

    Raises:
        FinetuneConfigError: ``"cuda"`` was asked for on a machine without CUDA.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FinetuneConfigError(
            "device='cuda' but torch finds no CUDA device on this machine; pass device='cpu' "
            "(--device cpu) or 'auto'."
        )
    return device
