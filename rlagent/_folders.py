"""Output folders that rlagent marks as its own, so that it only ever replaces what it wrote.

Shared by training run directories (:mod:`rlagent.training.rundir`) and fine-tuning outputs
(:mod:`rlagent.finetuning.saving`); each keeps its own marker file name and error messages.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["empty_folder", "has_marker", "outermost_missing", "write_marker_file"]


def has_marker(path: str | Path, marker: str) -> bool:
    """Whether ``path`` holds the JSON ``marker`` file that :func:`write_marker_file` writes."""
    try:
        content = json.loads((Path(path) / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and "rlagent_version" in content


def write_marker_file(folder: Path, marker: str) -> None:
    """Write ``folder / marker``: the rlagent version and the time, marking the folder as ours."""
    from rlagent import __version__

    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    content = {"rlagent_version": __version__, "created": created}
    (folder / marker).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def outermost_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist (``None``: ``path`` does)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def empty_folder(folder: Path) -> None:
    """Delete everything inside ``folder`` (links themselves, not what they point to)."""
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
