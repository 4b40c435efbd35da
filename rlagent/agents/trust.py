"""Telling pickled files apart, and refusing them unless the user trusts them.

Unpickling runs whatever code the pickle names, so a crafted file runs its author's code on the
machine that loads it. Stable-Baselines3's ``model.zip`` holds a pickle (its ``data`` entry
carries cloudpickled objects), and so does any ``torch.save`` file or ``*.pkl``. rlagent's own
model format (:func:`rlagent.agents.save_model`) holds only JSON and safetensors; everything
else is loaded only when the caller says it trusts the file.

These checks read bytes and zip directories; they never unpickle.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from pathlib import Path

__all__ = [
    "UntrustedFileError",
    "UntrustedModelError",
    "is_pickle_file",
    "is_pickled_model",
    "untrusted_model_message",
]

#: Files larger than this are recognised as pickles by their protocol header only.
_SCAN_LIMIT = 16 << 20
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pth", ".pt")


class UntrustedFileError(ValueError):
    """A file would run code from a pickle when loaded, and the caller did not trust it."""


class UntrustedModelError(UntrustedFileError):
    """A pickled model (an SB3 ``.zip``) was to be loaded without ``trust=True``."""


def is_pickle_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a raw pickle (any protocol), read without unpickling it.

    Protocol 2 and later start with the ``PROTO`` opcode; older protocols are recognised by
    parsing the opcodes of the whole file (up to 16 MiB) without executing them.

    Args:
        path: A file.

    Returns:
        True for a pickle, False otherwise (also for a missing file or a directory).
    """
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            return True
        if path.stat().st_size > _SCAN_LIMIT:
            return False
        handle.seek(0)
        data = handle.read()
    if not data:
        return False
    try:
        last = None
        for opcode, _, _ in pickletools.genops(data):
            last = opcode.name
    except Exception:  # noqa: BLE001  (any parse failure means: not a pickle)
        return False
    return last == "STOP"


def is_pickled_model(path: str | os.PathLike) -> bool:
    """Whether loading ``path`` would unpickle something.

    True for a Stable-Baselines3 ``.zip`` (a zip with a ``data`` entry), a zip holding pickled
    members (``*.pkl``, ``*.pth``, ``*.pt``, as ``torch.save`` writes) and a raw pickle file.
    False for rlagent's model directories, missing paths and other files.

    Args:
        path: A file or directory.

    Returns:
        Whether the file is a pickled model.
    """
    path = Path(path)
    if not path.is_file():
        return False
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return False
        return any(
            name == "data" or name.endswith("/data") or name.endswith(_PICKLE_SUFFIXES)
            for name in names
        )
    return is_pickle_file(path)


def untrusted_model_message(path: str | os.PathLike) -> str:
    """The one-line refusal for loading pickled model ``path`` without trust."""
    path = os.fspath(path)
    return (
        f"{path} is a pickled model (a Stable-Baselines3 .zip): loading it runs code stored in "
        "its pickle, which can do anything a program you run can do. If you trust where the "
        "file came from, load it with trust=True (--trust on the command line), or convert it "
        f"once with `rlagent export {path} OUT` (rlagent.agents.export_model) and load OUT, "
        "which holds only weights and JSON."
    )
