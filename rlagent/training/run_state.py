"""A run's progress and random generator states, saved as JSON and safetensors (no pickle).

A checkpoint must let a run continue exactly, so besides the model it keeps the run's own
progress (evaluation history, best score, wall time, an auxiliary optimizer's state...) and the
global random generators: Python's ``random``, numpy's legacy global generator, torch's CPU
generator and, on a machine with CUDA, every CUDA device's. :func:`save_run_state` writes them to

    DIR/run_state.json          the structure, with tensors and arrays replaced by references
    DIR/run_state.safetensors   those tensors and arrays (torch generator states among them)

and :func:`load_run_state` reads them back without unpickling anything. An older checkpoint's
``state.pkl`` is a pickle, which runs code when loaded: :func:`load_pickled_run_state` reads one
only with ``trust=True``.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlagent import _tensor_json
from rlagent.agents.trust import UntrustedFileError, is_pickle_file

__all__ = [
    "RUN_STATE_FILE",
    "RUN_STATE_TENSORS",
    "RunStateError",
    "UntrustedRunStateError",
    "capture_rng_state",
    "load_pickled_run_state",
    "load_run_state",
    "save_run_state",
    "set_rng_state",
]

RUN_STATE_FILE = "run_state.json"
RUN_STATE_TENSORS = "run_state.safetensors"
_FORMAT = "rlagent-run-state"
_VERSION = 1


class RunStateError(ValueError):
    """A run state cannot be saved (a value JSON cannot hold) or its files are damaged."""


class UntrustedRunStateError(UntrustedFileError):
    """A pickled run state (an older checkpoint's ``state.pkl``) was to be read untrusted."""


def capture_rng_state() -> dict[str, Any]:
    """The global random generators' states.

    Returns:
        ``{"python": random.getstate(), "numpy": np.random.get_state(), "torch":
        torch.get_rng_state(), "cuda": [per-device states] or None}``.
    """
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(rng: Mapping[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng_state` (CUDA only where available)."""
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_run_state(directory: str | os.PathLike, state: Mapping[str, Any]) -> list[Path]:
    """Write ``state`` as ``run_state.json`` + ``run_state.safetensors`` in ``directory``.

    Args:
        directory: The folder (a checkpoint being assembled); created if needed.
        state: Dicts, lists, tuples, strings, numbers, ``None``, numpy arrays and torch
            tensors, nested (e.g. ``{"run": ..., "rng": capture_rng_state(), "timesteps": n}``).

    Returns:
        The two files written.

    Raises:
        RunStateError: A value of another type (a function, an arbitrary object).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    try:
        encoded = _tensor_json.encode(dict(state), tensors, where="run state")
    except _tensor_json.TensorJSONError as exc:
        raise RunStateError(str(exc)) from None
    document = {"format": _FORMAT, "format_version": _VERSION, "state": encoded}
    files = [directory / RUN_STATE_FILE, directory / RUN_STATE_TENSORS]
    save_file(tensors, os.fspath(files[1]), metadata={"format": _FORMAT})
    files[0].write_text(json.dumps(document, allow_nan=False) + "\n", encoding="utf-8")
    return files


def load_run_state(directory: str | os.PathLike) -> dict[str, Any]:
    """Read a run state written by :func:`save_run_state`; nothing is unpickled.

    Args:
        directory: The folder holding ``run_state.json`` and ``run_state.safetensors``.

    Returns:
        The state, equal to what was saved (tuples and array dtypes kept; numpy scalars come
        back as Python numbers).

    Raises:
        RunStateError: Missing, malformed or corrupt files, or a version this rlagent does not
            read.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    json_file, tensor_file = directory / RUN_STATE_FILE, directory / RUN_STATE_TENSORS
    for file in (json_file, tensor_file):
        if not file.is_file():
            hint = ""
            if (directory / "state.pkl").is_file():
                hint = (
                    " It holds an older state.pkl instead, which is a pickle: read it with "
                    "load_pickled_run_state(path, trust=True) only if you trust its source."
                )
            raise RunStateError(f"{directory} has no {file.name}.{hint}")
    try:
        document = json.loads(json_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RunStateError(f"{json_file} is not valid JSON ({exc}).") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise RunStateError(f"{json_file} is not an rlagent run state.")
    if document.get("format_version") != _VERSION:
        raise RunStateError(
            f"{json_file} is run-state version {document.get('format_version')!r}; this rlagent "
            f"reads version {_VERSION} only."
        )
    try:
        tensors = load_file(os.fspath(tensor_file), device="cpu")
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error type)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunStateError(f"{tensor_file} is truncated or corrupt ({reason}).") from None
    try:
        return _tensor_json.decode(document.get("state"), tensors)
    except _tensor_json.TensorJSONError as exc:
        raise RunStateError(f"{json_file}: {exc}") from None


def load_pickled_run_state(path: str | os.PathLike, *, trust: bool = False) -> dict[str, Any]:
    """Read an older checkpoint's pickled ``state.pkl``, only when ``trust`` is given.

    Args:
        path: The ``state.pkl`` file.
        trust: Unpickle it. Unpickling runs code stored in the file: pass True only for a
            checkpoint you wrote yourself or otherwise trust.

    Returns:
        The unpickled state.

    Raises:
        UntrustedRunStateError: ``trust`` is False (nothing is read beyond the file's header).
        RunStateError: The file is missing or not a pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise RunStateError(f"No run state at {path}.")
    if not is_pickle_file(path):
        raise RunStateError(f"{path} is not a pickled run state.")
    if not trust:
        raise UntrustedRunStateError(
            f"{path} is a pickled run state: loading it runs code stored in the pickle, which "
            "can do anything a program you run can do. Pass trust=True (--trust on the command "
            "line) only if you wrote this checkpoint or trust its source."
        )
    with path.open("rb") as handle:
        return pickle.load(handle)  # noqa: S301  (the caller trusts this file)
