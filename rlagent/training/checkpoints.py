"""Checkpoints that survive interruption: atomic writes, checksums, fall-back on corruption.

A checkpoint is a folder ``checkpoints/step_<timesteps>/`` holding

    model/                  the model with its optimizer state and timestep counter, in the
                            safe format (:func:`rlagent.agents.save_model`: JSON + safetensors)
    run_state.json          the run's own progress (evaluation history, best score, wall time
    run_state.safetensors   so far) and the random generators' states
                            (:func:`rlagent.training.run_state.save_run_state`)
    manifest.json           written last: each file's SHA-256

Nothing in it is a pickle, so resuming from it runs no code from the files. The folder is
assembled under a temporary name and renamed into place, so a kill at any moment leaves either a
whole checkpoint or none; a checkpoint whose files do not match their manifest is reported and
skipped (a checksum guards against damage, not against an attacker, who can recompute it).

Checkpoints written by earlier rlagent versions hold ``model.zip`` and ``state.pkl`` instead:
pickles, which run code when loaded. They are read only with ``trust=True`` (``--trust``).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlagent.agents.saving import file_sha256
from rlagent.agents.trust import UntrustedFileError
from rlagent.training.run_state import (
    RUN_STATE_FILE,
    capture_rng_state,
    load_pickled_run_state,
    load_run_state,
    save_run_state,
    set_rng_state,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "UntrustedCheckpointError",
    "check_checkpoint_trust",
    "find_latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint_state",
    "restore_rng_state",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

_PREFIX = "step_"
_MANIFEST = "manifest.json"
_MODEL = "model"
_FORMAT = "rlagent-checkpoint"
#: The files of a checkpoint written before the safe format (pickles).
_PICKLED_MODEL = "model.zip"
_PICKLED_STATE = "state.pkl"


class CheckpointError(RuntimeError):
    """Raised when no usable checkpoint can be found or a checkpoint is corrupt."""


class UntrustedCheckpointError(UntrustedFileError):
    """An older, pickled checkpoint was to be resumed from without ``trust=True``."""


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
    def pickled(self) -> bool:
        """Whether it is an older checkpoint (``model.zip`` + ``state.pkl``, pickles)."""
        return not (self.path / RUN_STATE_FILE).is_file()

    @property
    def model_path(self) -> Path:
        """The saved model: the ``model/`` directory (``model.zip`` in an older checkpoint)."""
        return self.path / (_PICKLED_MODEL if self.pickled else _MODEL)

    @property
    def state_path(self) -> Path:
        """The run state: ``run_state.json`` (``state.pkl`` in an older checkpoint)."""
        return self.path / (_PICKLED_STATE if self.pickled else RUN_STATE_FILE)


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the global generators saved by :func:`save_checkpoint`."""
    rng = state.get("rng")
    if rng:
        set_rng_state(rng)


def save_checkpoint(
    model: Any, directory: Path, run_state: dict[str, Any], *, keep: int = 3
) -> Checkpoint:
    """Write a checkpoint of ``model`` and ``run_state`` atomically.

    Args:
        model: The SB3 model; its ``num_timesteps`` names the checkpoint.
        directory: The run's ``checkpoints/`` folder.
        run_state: Progress of the run (evaluation history and the like): dicts, lists,
            strings, numbers, arrays and tensors (see
            :func:`rlagent.training.run_state.save_run_state`).
        keep: Keep this many newest checkpoints; older ones are deleted.

    Returns:
        The written checkpoint.
    """
    from rlagent.agents.saving import save_model

    directory.mkdir(parents=True, exist_ok=True)
    timesteps = int(model.num_timesteps)
    final = directory / f"{_PREFIX}{timesteps:010d}"
    tmp = directory / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, tmp / _MODEL, include_optimizer=True)
    save_run_state(tmp, {"run": run_state, "rng": capture_rng_state(), "timesteps": timesteps})
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    manifest = {
        "format": _FORMAT,
        "timesteps": timesteps,
        "files": {file.relative_to(tmp).as_posix(): file_sha256(file) for file in files},
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
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise CheckpointError(f"Checkpoint {path}: its manifest names {name!r}, outside it.")
        if not file.is_file():
            raise CheckpointError(f"Checkpoint {path} is missing {name}.")
        if file_sha256(file) != digest:
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


def check_checkpoint_trust(checkpoint: Checkpoint, *, trust: bool) -> None:
    """Refuse an older, pickled checkpoint unless ``trust`` is given.

    Raises:
        UntrustedCheckpointError: ``checkpoint`` holds ``model.zip``/``state.pkl`` and
            ``trust`` is False. Nothing in it has been read but its manifest.
    """
    if checkpoint.pickled and not trust:
        raise UntrustedCheckpointError(
            f"{checkpoint.path} is a checkpoint in the older pickled format (model.zip, "
            "state.pkl): resuming from it runs code stored in those pickles, which can do "
            "anything a program you run can do. If you wrote this run yourself or trust its "
            "source, resume with --trust (trust=True); the checkpoints it writes from then on "
            "hold only weights and JSON."
        )


def load_checkpoint_state(checkpoint: Checkpoint, *, trust: bool = False) -> dict[str, Any]:
    """Read a checkpoint's run state (run progress and generator states).

    Args:
        checkpoint: The checkpoint.
        trust: Allow reading an older checkpoint's pickled ``state.pkl``.

    Returns:
        ``{"run": ..., "rng": ..., "timesteps": ...}`` as :func:`save_checkpoint` wrote it.

    Raises:
        UntrustedCheckpointError: An older, pickled checkpoint and ``trust`` is False.
        RunStateError: The run state's files are damaged.
    """
    if checkpoint.pickled:
        check_checkpoint_trust(checkpoint, trust=trust)
        return load_pickled_run_state(checkpoint.state_path, trust=True)
    return load_run_state(checkpoint.path)
