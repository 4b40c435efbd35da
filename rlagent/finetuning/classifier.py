"""A fine-tuned classifier read back from its folder: :func:`load_classifier`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlagent.encoders import Encoder, load_encoder
from rlagent.finetuning.errors import NotAClassifierError
from rlagent.finetuning.model import embed_texts
from rlagent.finetuning.saving import CLASSIFIER_CONFIG, CLASSIFIER_WEIGHTS

__all__ = ["TextClassifier", "load_classifier"]

_REQUIRED_KEYS = ("labels", "label_kind", "pooling", "max_length")


@dataclass(eq=False)
class TextClassifier:
    """A fine-tuned encoder with its linear head: texts -> label probabilities.

    Attributes:
        encoder: The loaded encoder (model in eval mode, tokenizer, checksum...).
        weight: Head weight, ``[L, H]``, on the encoder's device.
        bias: Head bias, ``[L]``.
        labels: Label names, ``L`` of them (categories or groups).
        label_kind: ``"category"`` or ``"group"``.
        pooling: ``"mean"`` or ``"cls"``.
        max_length: Tokens kept per text.
        groups: Category -> group mapping saved with the classifier, or ``None``.
        path: The folder it was loaded from.
    """

    encoder: Encoder
    weight: torch.Tensor
    bias: torch.Tensor
    labels: tuple[str, ...]
    label_kind: str
    pooling: str
    max_length: int
    groups: dict[str, str] | None = None
    path: str | None = None

    @property
    def device(self) -> torch.device:
        """Where the encoder and head are."""
        return self.weight.device

    def _texts(self, texts: str | Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            return [texts]
        return [str(t) for t in texts]

    def predict_proba(self, texts: str | Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Probabilities of each label for each text.

        Args:
            texts: ``N`` texts (a single string counts as one).
            batch_size: Texts per forward pass.

        Returns:
            ``[N, L]`` float64, each row summing to 1, columns in the order of ``labels``.
        """
        items = self._texts(texts)
        if not items:
            return np.zeros((0, len(self.labels)))
        features = embed_texts(
            self.encoder.model,
            self.encoder.tokenizer,
            items,
            max_length=self.max_length,
            pooling=self.pooling,
            batch_size=batch_size,
            device=self.device,
        ).to(self.device)
        logits = features @ self.weight.T + self.bias
        return torch.softmax(logits.double(), dim=-1).cpu().numpy()

    def predict(self, texts: str | Sequence[str], *, batch_size: int = 64) -> list[str]:
        """The most probable label of each text."""
        proba = self.predict_proba(texts, batch_size=batch_size)
        return [self.labels[i] for i in proba.argmax(axis=1)]

    @property
    def group_names(self) -> tuple[str, ...] | None:
        """The groups :meth:`predict_group_proba` returns columns for, or ``None`` if unknown."""
        if self.label_kind == "group":
            return self.labels
        if self.groups is None or any(label not in self.groups for label in self.labels):
            return None
        return tuple(dict.fromkeys(self.groups[label] for label in self.labels))

    def predict_group_proba(
        self, texts: str | Sequence[str], *, batch_size: int = 64
    ) -> np.ndarray:
        """Probabilities of each group: a category classifier's summed over each group.

        Returns:
            ``[N, G]``, columns in the order of :attr:`group_names`.

        Raises:
            ValueError: A category classifier saved without a group mapping.
        """
        groups = self.group_names
        if groups is None:
            raise ValueError(
                f"the classifier in {self.path} predicts categories and holds no group mapping "
                "for them; fine-tune with groups= (--groups FILE) to save one."
            )
        proba = self.predict_proba(texts, batch_size=batch_size)
        if self.label_kind == "group":
            return proba
        mapping = self.groups or {}
        columns = np.array([groups.index(mapping[label]) for label in self.labels])
        out = np.zeros((proba.shape[0], len(groups)))
        np.add.at(out, (slice(None), columns), proba)
        return out


def _read_description(folder: Path) -> dict[str, Any]:
    path = folder / CLASSIFIER_CONFIG
    if not folder.is_dir():
        raise NotAClassifierError(
            f"{str(folder)!r} is not a folder; pass the --out folder of an rlagent finetune run."
        )
    if not path.is_file():
        raise NotAClassifierError(
            f"{str(folder)!r} holds no {CLASSIFIER_CONFIG}, so it is not a classifier written by "
            "rlagent finetune; pass the --out folder of an rlagent finetune run (an encoder "
            "folder alone has no head to classify with)."
        )
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise NotAClassifierError(
            f"{path} is not readable JSON ({err}); run rlagent finetune again to rewrite it."
        ) from err
    missing = [
        key for key in _REQUIRED_KEYS if not isinstance(description, dict) or key not in description
    ]
    if missing:
        raise NotAClassifierError(
            f"{path} lacks {missing}; it was not written by rlagent finetune, or was edited. "
            "Run rlagent finetune again to rewrite it."
        )
    return description


def load_classifier(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> TextClassifier:
    """Read a classifier written by :func:`rlagent.finetuning.finetune`.

    Args:
        path: The output folder of a fine-tuning run.
        device: Where to put the encoder and head.

    Returns:
        The classifier.

    Raises:
        NotAClassifierError: ``path`` is not a folder holding ``classifier.json`` and
            ``classifier.safetensors`` that match its encoder.
    """
    from safetensors.torch import load_file

    folder = Path(path)
    description = _read_description(folder)
    weights_path = folder / CLASSIFIER_WEIGHTS
    if not weights_path.is_file():
        raise NotAClassifierError(
            f"{str(folder)!r} has {CLASSIFIER_CONFIG} but no {CLASSIFIER_WEIGHTS}; run rlagent "
            "finetune again to rewrite it."
        )
    tensors = load_file(str(weights_path))
    encoder = load_encoder(str(folder), device=device)
    labels = tuple(description["labels"])
    expected = (len(labels), encoder.hidden_size)
    weight, bias = tensors.get("weight"), tensors.get("bias")
    if weight is None or bias is None or tuple(weight.shape) != expected:
        raise NotAClassifierError(
            f"{weights_path} does not hold a head of shape {expected} (labels x hidden size) "
            "with a bias; it does not belong to this folder's encoder and labels. Run rlagent "
            "finetune again to rewrite it."
        )
    groups = description.get("groups")
    return TextClassifier(
        encoder=encoder,
        weight=weight.to(device),
        bias=bias.to(device),
        labels=labels,
        label_kind=str(description["label_kind"]),
        pooling=str(description["pooling"]),
        max_length=int(description["max_length"]),
        groups=dict(groups) if groups else None,
        path=str(folder),
    )
