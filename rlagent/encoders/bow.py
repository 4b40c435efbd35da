"""A bag-of-words features extractor: the no-BERT baseline for the same token-id observations.

Each segment's token ids are averaged through an ``nn.EmbeddingBag`` (padding id 0 ignored), so
word order and context are lost but nothing pretrained is needed. It reads the same Dicts as
:class:`rlagent.encoders.TextFeaturesExtractor` and is the reference that a cached frozen
encoder should match or beat in training speed (``rlagent bench encoder``).
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from rlagent.encoders.extractor import text_layout

__all__ = ["BagOfWordsExtractor"]


class BagOfWordsExtractor(BaseFeaturesExtractor):
    """Mean of learned token embeddings per segment, segments concatenated, numeric Boxes after.

    Args:
        observation_space: Token-id Dict made by :class:`rlagent.wrappers.TokenizeText`.
        embed_dim: Width of a token (and segment) embedding.
        vocab_size: Number of token ids; default: the ids Box's ``high + 1``.
    """

    def __init__(
        self, observation_space: spaces.Dict, *, embed_dim: int = 64, vocab_size: int | None = None
    ) -> None:
        text, numeric = text_layout(observation_space)
        if vocab_size is None:
            vocab_size = max(int(observation_space.spaces[t.ids_key].high.max()) + 1 for t in text)
        dim = sum(t.segments for t in text) * int(embed_dim) + sum(n for _, n in numeric)
        super().__init__(observation_space, dim)
        self._text = text
        self._numeric = numeric
        self.embed_dim = int(embed_dim)
        self.bag = nn.EmbeddingBag(int(vocab_size), self.embed_dim, mode="mean", padding_idx=0)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features ``[B, features_dim]``."""
        parts = []
        for entry in self._text:
            ids = observations[entry.ids_key].long()
            mask = observations[entry.mask_key].long()
            batch = ids.shape[0]
            ids = (ids * mask).reshape(batch * entry.segments, entry.length)
            parts.append(self.bag(ids).reshape(batch, entry.segments * self.embed_dim))
        for key, size in self._numeric:
            parts.append(observations[key].reshape(-1, size).float())
        return torch.cat(parts, dim=1)
