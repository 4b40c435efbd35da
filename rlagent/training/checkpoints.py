"""Checkpoints that survive interruption: atomic writes, checksums, fall-back on corruption.

A checkpoint is a folder ``checkpoints/step_<timesteps>/`` holding ``model.zip`` (policy,
optimiser state, timestep counter), ``state.pkl`` (random generator states and the run's own
progress: evaluation history, best score, wall time so far) and, written last,
``manifest.json`` with each file's SHA-256. The folder is assembled under a temporary name and
renamed into place, so a kill at any moment leaves either a whole checkpoint or none; a
checkpoint whose files do not match their manifest is reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "find_latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint_state",
    "restore_rng_state",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

_PREFIX = "step_"
_MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """Raised when no usable checkpoint can be found or a checkpoint is corrupt."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint on disk.

    Attributes:
        path: The checkpoint folder.
        timesteps: Environment steps trained when it was written.
    """

    path: Path
    timesteps: int

    @property
    def model_path(self) -> Path:
        """The saved model (``model.zip``)."""
        return self.path / "model.zip"

    @property
    def state_path(self) -> Path:
        """The pickled run state (``state.pkl``)."""
        return self.path / "state.pkl"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the global generators saved by :func:`save_checkpoint`."""
    rng = state.get("rng")
    if not rng:
        return
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_checkpoint(
    model: Any, directory: Path, run_state: dict[str, Any], *, keep: int = 3
) -> Checkpoint:
    """Write a checkpoint of ``model`` and ``run_state`` atomically.

    Args:
        model: The SB3 model; its ``num_timesteps`` names the checkpoint.
        directory: The run's ``checkpoints/`` folder.
        run_state: Picklable progress of the run (evaluation history and the like).
        keep: Keep this many newest checkpoints; older ones are deleted.

    Returns:
        The written checkpoint.
    """
    directory.mkdir(parents=True, exist_ok=True)
    timesteps = int(model.num_timesteps)
    final = directory / f"{_PREFIX}{timesteps:010d}"
    tmp = directory / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / "model.zip")
    with (tmp / "state.pkl").open("wb") as handle:
        pickle.dump({"run": run_state, "rng": _rng_state(), "timesteps": timesteps}, handle)
    manifest = {
        "timesteps": timesteps,
        "files": {name: _sha256(tmp / name) for name in ("model.zip", "state.pkl")},
    }
    (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(directory, verify=False)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    return Checkpoint(final, timesteps)


def _verify(path: Path) -> Checkpoint:
    manifest_path = path / _MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        timesteps = int(manifest["timesteps"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"Checkpoint {path} has no readable manifest ({exc}).") from None
    for name, digest in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"Checkpoint {path} is missing {name}.")
        if _sha256(file) != digest:
            raise CheckpointError(
                f"Checkpoint {path}: {name} does not match its checksum (truncated or modified)."
            )
    return Checkpoint(path, timesteps)


def list_checkpoints(directory: Path, *, verify: bool = True) -> list[Checkpoint]:
    """Checkpoints in ``directory``, oldest first.

    With ``verify``, corrupt ones are skipped with a warning.
    """
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob(f"{_PREFIX}*")):
        if not path.is_dir():
            continue
        if not verify:
            found.append(Checkpoint(path, int(path.name[len(_PREFIX) :])))
            continue
        try:
            found.append(_verify(path))
        except CheckpointError as exc:
            logger.warning("%s Skipping it and using an earlier checkpoint.", exc)
    return found


def find_latest_checkpoint(directory: Path) -> Checkpoint:
    """The newest checkpoint that passes verification.

    Raises:
        CheckpointError: There is none.
    """
    checkpoints = list_checkpoints(directory)
    if not checkpoints:
        raise CheckpointError(
            f"No usable checkpoint in {directory}. Start a new run without --resume "
            "(with --overwrite to replace this run directory)."
        )
    return checkpoints[-1]


def load_checkpoint_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """Read a checkpoint's ``state.pkl`` (run progress and generator states)."""
    with checkpoint.state_path.open("rb") as handle:
        return pickle.load(handle)
