"""The classifier that is fine-tuned: encoder, pooling, dropout and a linear head.

:class:`EncoderClassifier` is what the Hugging Face ``Trainer`` trains in the fine-tuning
phase; :class:`ProbeModel` (the head alone, on precomputed embeddings) what it trains in the
linear-probe phase. :func:`embed_texts` computes the pooled embeddings both the probe and a
loaded :class:`~rlagent.finetuning.TextClassifier` use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rlagent.finetuning.errors import FinetuneConfigError

__all__ = [
    "ClassifierHead",
    "EncoderClassifier",
    "ProbeModel",
    "add_lora",
    "embed_texts",
    "merge_lora",
    "pool",
]

_LORA_HINT = "pip install 'rlagent[finetune]' (or pip install peft)"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per text from the token embeddings.

    Args:
        hidden: Token embeddings, ``[B, T, H]``.
        attention_mask: 1 for real tokens, 0 for padding, ``[B, T]``.
        pooling: ``"mean"`` (mean over real tokens) or ``"cls"`` (the first token).

    Returns:
        ``[B, H]``.
    """
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class ClassifierHead(nn.Module):
    """Dropout then a linear layer: pooled embedding ``[B, H]`` -> logits ``[B, L]``.

    Args:
        hidden_size: Width ``H`` of the pooled embedding.
        num_labels: Number of labels ``L``.
        dropout: Dropout probability before the linear layer (training only).
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, L]`` of pooled embeddings ``[B, H]``."""
        return self.linear(self.dropout(features))


def _output(logits: torch.Tensor, labels: torch.Tensor | None) -> Any:
    from transformers.modeling_outputs import SequenceClassifierOutput

    loss = None if labels is None else nn.functional.cross_entropy(logits, labels.long())
    return SequenceClassifierOutput(loss=loss, logits=logits)


class EncoderClassifier(nn.Module):
    """A BERT encoder, pooling and a :class:`ClassifierHead`, trained with cross-entropy.

    Args:
        encoder: The transformer (a ``BertModel``, or one wrapped with LoRA adapters).
        head: The classification head.
        pooling: ``"mean"`` or ``"cls"``.
    """

    def __init__(self, encoder: nn.Module, head: ClassifierHead, pooling: str = "mean") -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.pooling = pooling

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> Any:
        """Logits ``[B, L]`` (and the mean cross-entropy loss when ``labels`` ``[B]`` are given).

        Returns:
            A ``transformers`` ``SequenceClassifierOutput`` with ``loss`` and ``logits``.
        """
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **kwargs
        ).last_hidden_state
        return _output(self.head(pool(hidden, attention_mask, self.pooling)), labels)


class ProbeModel(nn.Module):
    """The head alone, trained on precomputed pooled embeddings (the linear-probe phase).

    Args:
        head: The classification head.
    """

    def __init__(self, head: ClassifierHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        """Logits ``[B, L]`` of embeddings ``[B, H]`` (and the loss when ``labels`` are given)."""
        return _output(self.head(features), labels)


def _import_peft() -> Any:
    try:
        import peft
    except ImportError as err:
        raise ImportError(f"mode='lora' (--lora) needs the peft package: {_LORA_HINT}.") from err
    return peft


def add_lora(encoder: nn.Module, config: Any) -> nn.Module:
    """Wrap ``encoder`` with LoRA adapters (its own weights frozen), as ``config`` says.

    Args:
        encoder: The transformer.
        config: The :class:`~rlagent.finetuning.FinetuneConfig` (``lora_*`` settings).

    Returns:
        The ``peft`` model; :func:`merge_lora` turns it back into a plain transformer.

    Raises:
        ImportError: ``peft`` is not installed (with the install command).
        FinetuneConfigError: No module of the encoder matches ``lora_target_modules``.
    """
    peft = _import_peft()
    lora = peft.LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        bias="none",
    )
    try:
        return peft.get_peft_model(encoder, lora)
    except ValueError as err:
        raise FinetuneConfigError(
            f"lora_target_modules={config.lora_target_modules!r} matches no module of the "
            f"encoder ({type(encoder).__name__}); for BERT use ('query', 'key', 'value'). "
            f"peft said: {err}"
        ) from err


def merge_lora(encoder: nn.Module) -> nn.Module:
    """The plain transformer with any LoRA adapters merged into its weights."""
    if hasattr(encoder, "merge_and_unload"):
        return encoder.merge_and_unload()
    return encoder


def embed_texts(
    encoder: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    pooling: str,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
    description: str = "embedding",
) -> torch.Tensor:
    """Pooled embeddings of ``texts`` in eval mode, without gradients.

    Texts are batched in order of length (less padding), and the rows returned in the order
    given.

    Args:
        encoder: The transformer, on ``device``.
        tokenizer: Its tokenizer.
        texts: The texts, ``N`` of them.
        max_length: Tokens kept per text.
        pooling: ``"mean"`` or ``"cls"``.
        batch_size: Texts per forward pass.
        device: Where the encoder is.
        progress: Show a tqdm progress bar.
        description: The progress bar's label.

    Returns:
        ``[N, H]`` float32 on the CPU.
    """
    from tqdm.auto import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    was_training = encoder.training
    encoder.eval()
    chunks: list[torch.Tensor] = []
    starts = range(0, len(order), batch_size)
    try:
        with torch.inference_mode():
            for start in tqdm(starts, desc=description, disable=not progress, leave=False):
                batch = [texts[i] for i in order[start : start + batch_size]]
                tokens = tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                ).to(device)
                hidden = encoder(**tokens).last_hidden_state
                chunks.append(pool(hidden, tokens["attention_mask"], pooling).float().cpu())
    finally:
        encoder.train(was_training)
    hidden_size = int(getattr(getattr(encoder, "config", None), "hidden_size", 0))
    embedded = torch.cat(chunks) if chunks else torch.zeros(0, hidden_size)
    out = torch.empty_like(embedded)
    out[torch.tensor(order, dtype=torch.long)] = embedded
    return out
