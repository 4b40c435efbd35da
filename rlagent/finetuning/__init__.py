"""Supervised fine-tuning of a text encoder on labelled utterances, and the classifier it makes.

``finetune(data, out, config=FinetuneConfig(...))`` trains an encoder with a linear head on a
``text,category`` CSV (or the built-in corpus) with the Hugging Face ``Trainer``, full or LoRA,
and writes a model folder that ``--encoder DIR`` accepts everywhere. ``load_classifier(DIR)``
reads it back as a :class:`TextClassifier`; ``evaluate_classifier`` scores it. See
docs/finetuning.md.
"""

from rlagent.finetuning.classifier import TextClassifier, load_classifier
from rlagent.finetuning.config import (
    DEVICES,
    LABEL_KINDS,
    MODES,
    POOLINGS,
    FinetuneConfig,
)
from rlagent.finetuning.data import BUILTIN, builtin_groups, builtin_rows
from rlagent.finetuning.errors import (
    FinetuneConfigError,
    FinetuneDataError,
    FinetuneOutputExistsError,
    ForeignOutputError,
    NotAClassifierError,
)
from rlagent.finetuning.evaluation import accuracy, evaluate_classifier, macro_f1
from rlagent.finetuning.run import FinetuneResult, finetune
from rlagent.finetuning.saving import MARKER, is_finetune_output

__all__ = [
    "BUILTIN",
    "DEVICES",
    "LABEL_KINDS",
    "MARKER",
    "MODES",
    "POOLINGS",
    "FinetuneConfig",
    "FinetuneConfigError",
    "FinetuneDataError",
    "FinetuneOutputExistsError",
    "FinetuneResult",
    "ForeignOutputError",
    "NotAClassifierError",
    "TextClassifier",
    "accuracy",
    "builtin_groups",
    "builtin_rows",
    "evaluate_classifier",
    "finetune",
    "is_finetune_output",
    "load_classifier",
    "macro_f1",
]
