"""Exceptions raised by :mod:`rlagent.finetuning`, each saying what was wrong and how to fix it.

They subclass ``ValueError``, ``FileExistsError`` or ``FileNotFoundError``, so the CLI prints
their message as a one-line error.
"""

from __future__ import annotations

__all__ = [
    "FinetuneConfigError",
    "FinetuneDataError",
    "FinetuneOutputExistsError",
    "ForeignOutputError",
    "NotAClassifierError",
]


class FinetuneConfigError(ValueError):
    """A :class:`~rlagent.finetuning.FinetuneConfig` setting is out of range or unknown."""


class FinetuneDataError(ValueError):
    """The labelled data cannot be used as given (too few labels, a category without a group)."""


class FinetuneOutputExistsError(FileExistsError):
    """The output folder exists and is not empty, and ``overwrite`` was not set."""


class ForeignOutputError(FinetuneOutputExistsError):
    """``overwrite`` met a folder that ``rlagent finetune`` did not write; nothing was deleted."""


class NotAClassifierError(FileNotFoundError):
    """A folder passed as a fine-tuned classifier holds no ``classifier.json``."""
