"""Which entries of a token-id observation space are texts, and which hidden states to pool.

:func:`text_layout` splits a ``spaces.Dict`` made by :class:`rlagent.wrappers.TokenizeText`
into text entries (``<name>_input_ids`` / ``<name>_attention_mask`` pairs of shape ``[K, L]``)
and numeric entries; :class:`FeaturesLayout` says where each lands in a text extractor's
features vector; :func:`layer_indices` checks a ``layers`` setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

__all__ = [
    "FeaturesLayout",
    "ObservationLayoutError",
    "check_layers",
    "layer_indices",
    "text_layout",
]

_IDS = "_input_ids"
_MASK = "_attention_mask"


class ObservationLayoutError(ValueError):
    """An observation space does not have the token-id layout the text extractor reads."""


@dataclass(frozen=True)
class _TextEntry:
    name: str
    ids_key: str
    mask_key: str
    segments: int
    length: int


@dataclass(frozen=True)
class FeaturesLayout:
    """Where each observation entry sits in a text extractor's features vector.

    The text entries come first, each as ``segments`` consecutive embeddings of
    ``embedding_dim`` values, then the numeric entries, flattened, in observation order.

    Attributes:
        text: ``(entry name, segments)`` of each text entry (``name`` without
            ``_input_ids``), in features order.
        numeric: ``(key, flat size)`` of each numeric entry, in features order.
        embedding_dim: Width of one segment's embedding.
    """

    text: tuple[tuple[str, int], ...]
    numeric: tuple[tuple[str, int], ...]
    embedding_dim: int

    @property
    def numeric_offset(self) -> int:
        """Index of the first numeric column (the width of all text embeddings)."""
        return sum(segments for _, segments in self.text) * self.embedding_dim

    @property
    def features_dim(self) -> int:
        """Width of the whole features vector."""
        return self.numeric_offset + sum(size for _, size in self.numeric)


def text_layout(observation_space: spaces.Space) -> tuple[list[_TextEntry], list[tuple[str, int]]]:
    """Split a token-id Dict space into text entries and numeric Box entries.

    Args:
        observation_space: A ``spaces.Dict`` as made by :class:`rlagent.wrappers.TokenizeText`.

    Returns:
        ``(text_entries, numeric)``: text entries in space order, and ``(key, flat_size)`` for
        every other Box, in space order.

    Raises:
        ObservationLayoutError: When the space is not such a Dict.
    """
    if not isinstance(observation_space, spaces.Dict):
        raise ObservationLayoutError(
            f"The text features extractor needs a spaces.Dict of token ids, got "
            f"{type(observation_space).__name__}; wrap the env with "
            "rlagent.wrappers.TokenizeText (or use rlagent.agents.make_vec_env)."
        )
    keys = list(observation_space.spaces)
    text: list[_TextEntry] = []
    numeric: list[tuple[str, int]] = []
    used: set[str] = set()
    for key in keys:
        space = observation_space.spaces[key]
        if not isinstance(space, spaces.Box):
            raise ObservationLayoutError(
                f"Observation entry {key!r} is a {type(space).__name__}; the text features "
                "extractor reads only Box entries (token ids, attention masks, numeric features). "
                "Wrap the env with rlagent.wrappers.TokenizeText to turn Text entries into ids."
            )
        if key.endswith(_IDS):
            name = key[: -len(_IDS)]
            mask_key = name + _MASK
            mask_space = observation_space.spaces.get(mask_key)
            if mask_space is None:
                raise ObservationLayoutError(
                    f"Observation entry {key!r} has no matching {mask_key!r}; every "
                    "'<name>_input_ids' needs a '<name>_attention_mask' of the same shape."
                )
            if len(space.shape) not in (1, 2) or mask_space.shape != space.shape:
                raise ObservationLayoutError(
                    f"Observation entries {key!r} {space.shape} and {mask_key!r} "
                    f"{mask_space.shape} must both have shape (K, max_length) or (max_length,)."
                )
            segments, length = (1, space.shape[0]) if len(space.shape) == 1 else space.shape
            text.append(_TextEntry(name, key, mask_key, int(segments), int(length)))
            used.update((key, mask_key))
    for key in keys:
        if key not in used:
            numeric.append((key, int(np.prod(observation_space.spaces[key].shape))))
    if not text:
        raise ObservationLayoutError(
            f"Observation space has no '<name>_input_ids' entries (keys: {keys}); wrap the env "
            "with rlagent.wrappers.TokenizeText."
        )
    return text, numeric


def layer_indices(layers: Sequence[int] | None) -> tuple[int, ...] | None:
    """``layers`` as a tuple of ints (``None`` stays ``None``), for any encoder.

    Raises:
        TypeError: When ``layers`` is not a sequence of integers.
        ValueError: When it is empty.
    """
    if layers is None:
        return None
    if isinstance(layers, str | bytes) or not isinstance(layers, Sequence):
        raise TypeError(
            f"layers must be a list of hidden-state indices (e.g. [-1, 3]) or None, got {layers!r}."
        )
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int | np.integer):
            raise TypeError(f"layers must hold integers, got {layer!r} in {list(layers)!r}.")
    if not layers:
        raise ValueError("layers is empty; pass None to pool the last layer only.")
    return tuple(int(layer) for layer in layers)


def check_layers(layers: Sequence[int] | None, num_layers: int) -> tuple[int, ...] | None:
    """:func:`layer_indices`, checked against an encoder with ``num_layers`` layers."""
    values = layer_indices(layers)
    if values is None:
        return None
    for layer in values:
        if not -(num_layers + 1) <= layer <= num_layers:
            raise ValueError(
                f"layers = {list(values)!r}: {layer} is out of range for an encoder with "
                f"{num_layers} layers; use 0 (the embeddings) to {num_layers} (the last layer), "
                f"or -1 to -{num_layers + 1} counted from the end (in a training config: "
                "encoder_layers, or --encoder-layers for rlagent train)."
            )
    canonical = [v % (num_layers + 1) for v in values]
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"layers = {list(values)!r} names the same hidden state twice.")
    return values
