"""A bounded LRU cache of segment embeddings keyed by token ids.

The frozen features extractor encodes each distinct text segment once: rows of token ids are
looked up here, only the misses go through BERT (in one batch), and their embeddings are stored
for next time. Embeddings live in one preallocated table (grown by doubling up to ``max_size``
rows) on the encoder's device, so a lookup is a single gather.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["CacheInfo", "EmbeddingCache"]

_INITIAL_ROWS = 1024


@dataclass(frozen=True)
class CacheInfo:
    """Counters of an :class:`EmbeddingCache`.

    Attributes:
        hits: Segment lookups answered from the cache.
        misses: Segment lookups that had to be encoded (duplicates within one batch count once
            per row).
        size: Entries held now.
        max_size: Capacity in entries.
        hit_rate: ``hits / (hits + misses)``, 0.0 before any lookup.
    """

    hits: int
    misses: int
    size: int
    max_size: int
    hit_rate: float


class EmbeddingCache:
    """Least-recently-used map from a row of token ids to its embedding vector.

    Args:
        max_size: Capacity in entries (segments). Must be positive.
        dim: Embedding width.
        device: Where the embedding table lives.
    """

    def __init__(self, max_size: int, dim: int, device: torch.device | str = "cpu") -> None:
        if int(max_size) <= 0:
            raise ValueError(
                f"cache max_size must be a positive number of entries, got {max_size!r}; "
                "pass cache_size=0 to the extractor to disable the cache instead."
            )
        self.max_size = int(max_size)
        self.dim = int(dim)
        self._slots: OrderedDict[bytes, int] = OrderedDict()
        self._table = torch.zeros(
            (min(self.max_size, _INITIAL_ROWS), self.dim), dtype=torch.float32, device=device
        )
        self._free: list[int] = list(range(self._table.shape[0] - 1, -1, -1))
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def device(self) -> torch.device:
        """The device of the embedding table."""
        return self._table.device

    def to(self, device: torch.device | str) -> EmbeddingCache:
        """Move the table to ``device`` (in place) and return ``self``."""
        self._table = self._table.to(device)
        return self

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        self._slots.clear()
        self._free = list(range(self._table.shape[0] - 1, -1, -1))
        self.hits = 0
        self.misses = 0

    def info(self) -> CacheInfo:
        """The current counters as a :class:`CacheInfo`."""
        total = self.hits + self.misses
        return CacheInfo(
            hits=self.hits,
            misses=self.misses,
            size=len(self._slots),
            max_size=self.max_size,
            hit_rate=self.hits / total if total else 0.0,
        )

    def _grow(self) -> None:
        old = self._table.shape[0]
        new = min(self.max_size, old * 2)
        table = torch.zeros((new, self.dim), dtype=self._table.dtype, device=self._table.device)
        table[:old] = self._table
        self._table = table
        self._free.extend(range(new - 1, old - 1, -1))

    def _slot_for_new(self) -> int:
        if not self._free and self._table.shape[0] < self.max_size:
            self._grow()
        if self._free:
            return self._free.pop()
        _, slot = self._slots.popitem(last=False)
        return slot

    def lookup(self, ids: np.ndarray, encode: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
        """Embeddings for rows of token ids, encoding only the rows not cached.

        Args:
            ids: ``[N, L]`` integer token ids (padding included; equal rows are the same key).
            encode: Called once with the ``[M, L]`` distinct uncached rows (``M >= 1``); returns
                their ``[M, dim]`` embeddings.

        Returns:
            ``[N, dim]`` float32 embeddings on the cache's device.
        """
        n = ids.shape[0]
        out = torch.empty((n, self.dim), dtype=torch.float32, device=self._table.device)
        if n == 0:
            return out
        ids = np.ascontiguousarray(ids)
        keys = [row.tobytes() for row in ids]
        slots = self._slots
        hit_rows: list[int] = []
        hit_slots: list[int] = []
        miss_index: dict[bytes, int] = {}
        first_rows: list[int] = []
        miss_rows: list[int] = []
        miss_of_row: list[int] = []
        for row, key in enumerate(keys):
            slot = slots.get(key)
            if slot is not None:
                slots.move_to_end(key)
                hit_rows.append(row)
                hit_slots.append(slot)
            else:
                j = miss_index.get(key)
                if j is None:
                    j = miss_index[key] = len(first_rows)
                    first_rows.append(row)
                miss_rows.append(row)
                miss_of_row.append(j)
        self.hits += len(hit_rows)
        self.misses += len(miss_rows)
        device = self._table.device
        if hit_rows:
            out[torch.as_tensor(hit_rows, device=device)] = self._table[
                torch.as_tensor(hit_slots, device=device)
            ]
        if miss_index:
            fresh = encode(ids[first_rows]).to(device=device, dtype=torch.float32)
            out[torch.as_tensor(miss_rows, device=device)] = fresh[
                torch.as_tensor(miss_of_row, device=device)
            ]
            # Store at most max_size new entries, so that no slot is written twice in one batch.
            keep = list(miss_index)[-self.max_size :]
            new_slots = []
            for key in keep:
                slot = self._slot_for_new()
                slots[key] = slot
                new_slots.append(slot)
            self._table[torch.as_tensor(new_slots, device=device)] = fresh[
                len(miss_index) - len(keep) :
            ]
        return out
