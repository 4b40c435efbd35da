"""Run directories: the marker ``train`` leaves, and the settings ``--resume`` keeps.

Every run directory that :func:`rlagent.training.train` creates holds a marker file,
``.rlagent-run.json`` (the rlagent version and the time the run started). ``overwrite=True``
(``--overwrite``) deletes only a directory that holds it: a folder of anything else is refused
and kept as it is. A run that fails before its first checkpoint removes what it created, so the
corrected command starts afresh. A resumed run keeps the settings saved in its ``config.yaml``:
only the settings in :data:`RESUMABLE_SETTINGS` may be given anew (the budget, the device and
how often to evaluate and checkpoint); any other that differs is refused.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rlagent._folders import empty_folder, has_marker, outermost_missing, write_marker_file
from rlagent._yaml import read_yaml_mapping
from rlagent.training.checkpoints import list_checkpoints
from rlagent.training.config import ConfigError, TrainConfig, _merge, merge_user_settings

__all__ = [
    "MARKER",
    "RESUMABLE_SETTINGS",
    "ForeignDirectoryError",
    "ResumeError",
    "RunDirectoryExistsError",
    "check_resume_settings",
    "is_run_directory",
    "resume_config",
    "saved_config",
]

logger = logging.getLogger(__name__)

#: The file that marks a directory as written by ``rlagent train``.
MARKER = ".rlagent-run.json"
_CONFIG = "config.yaml"

#: Settings that a resumed run may change when they are given explicitly; the others define
#: the model, its environments or what its evaluations measure, and must stay as saved.
RESUMABLE_SETTINGS: tuple[str, ...] = (
    "n_timesteps",
    "device",
    "eval_freq",
    "eval_episodes",
    "checkpoint_freq",
    "keep_checkpoints",
    "baseline_episodes",
)

#: The command-line flag of a setting, where there is one (for messages).
_FLAGS = {
    "env_id": "--env",
    "env_kwargs": "--env-kwargs",
    "n_timesteps": "--timesteps",
    "encoder": "--encoder",
    "encoder_mode": "--encoder-mode",
    "encoder_layers": "--encoder-layers",
    "n_envs": "--n-envs",
    "seed": "--seed",
    "warm_start": "--warm-start",
    "init_model": "--init",
}


class RunDirectoryExistsError(FileExistsError):
    """Raised instead of overwriting an existing run directory."""


class ForeignDirectoryError(RunDirectoryExistsError):
    """Raised when ``overwrite`` meets a directory that ``rlagent train`` did not write."""


class ResumeError(ConfigError):
    """Raised when ``resume`` is given settings that contradict the run's saved ones."""


def is_run_directory(path: str | Path) -> bool:
    """Whether ``path`` holds the marker that ``rlagent train`` leaves in a run directory."""
    return has_marker(path, MARKER)


def write_marker(out_dir: Path) -> None:
    """Mark ``out_dir`` as a run directory written by ``rlagent train``."""
    write_marker_file(out_dir, MARKER)


def prepare_new_run(out_dir: Path, *, overwrite: bool) -> Path | None:
    """Make ``out_dir`` ready for a new run and mark it.

    Args:
        out_dir: The run directory.
        overwrite: Empty an existing run directory first (only one holding the marker).

    Returns:
        The outermost directory this call created (``out_dir`` or a parent of it), or
        ``None`` when ``out_dir`` existed; :func:`discard_failed_start` removes it.

    Raises:
        RunDirectoryExistsError: ``out_dir`` is not empty and ``overwrite`` is not set.
        ForeignDirectoryError: ``overwrite`` is set but ``out_dir`` is not a run directory.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirectoryExistsError(
            f"{out_dir} exists and is not a directory; choose another --out."
        )
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise RunDirectoryExistsError(
                f"Run directory {out_dir} already exists and is not empty. Use --resume to "
                "continue it, --overwrite to delete it and start over, or choose another --out."
            )
        if not is_run_directory(out_dir):
            raise ForeignDirectoryError(
                f"{out_dir} was not written by rlagent train (it has no {MARKER}), so "
                "--overwrite deleted nothing; choose another --out, or empty it yourself."
            )
        logger.info("Deleting the earlier run in %s (--overwrite).", out_dir)
        empty_folder(out_dir)
    created = outermost_missing(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_marker(out_dir)
    return created


def discard_failed_start(out_dir: Path, created: Path | None) -> None:
    """Remove what a new run wrote when it failed before its first checkpoint.

    Args:
        out_dir: The run directory.
        created: What :func:`prepare_new_run` returned: the directory it created, removed
            whole; ``None`` empties ``out_dir``, which existed and was empty (or emptied by
            ``overwrite``) when the run started.
    """
    if not is_run_directory(out_dir) or list_checkpoints(out_dir / "checkpoints", verify=False):
        return
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
    else:
        empty_folder(out_dir)
    logger.info("Removed what the failed run wrote in %s (it had no checkpoint yet).", out_dir)


def write_config(out_dir: Path, config: TrainConfig) -> None:
    """Write the run's settings to ``config.yaml`` (replaced atomically)."""
    tmp = out_dir / f".{_CONFIG}.tmp"
    tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=True))
    tmp.replace(out_dir / _CONFIG)


def _saved_settings(out_dir: Path) -> dict[str, Any]:
    path = out_dir / _CONFIG
    if not path.is_file():
        raise ConfigError(
            f"Cannot resume: {out_dir} is not a run directory (no {_CONFIG}). "
            "Start a new run without --resume."
        )
    return read_yaml_mapping(path, what="Run configuration", error=ConfigError)


def saved_config(out_dir: str | Path) -> TrainConfig:
    """The settings a run was started with, from its ``config.yaml``.

    Raises:
        ConfigError: ``out_dir`` has no readable ``config.yaml``.
    """
    out_dir = Path(out_dir)
    return TrainConfig.from_dict(_saved_settings(out_dir), str(out_dir / _CONFIG))


def resume_config(
    out_dir: str | Path,
    *,
    config_file: str | Path | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> TrainConfig:
    """The saved settings of a run with the given ones applied on top, for ``resume=True``.

    This is what ``rlagent train --resume`` passes to :func:`rlagent.training.train`: the
    run's ``config.yaml``, then ``config_file``, ``env_kwargs`` and the ``overrides`` whose
    value is not ``None`` (unlike :func:`rlagent.training.load_config`, the env's bundled
    defaults play no part). ``train`` then refuses a given setting that contradicts a saved
    one (see :func:`check_resume_settings`).

    Args:
        out_dir: The run directory.
        config_file: Optional YAML of settings.
        env_kwargs: Environment keyword arguments, merged into the saved ones.
        **overrides: Field values, e.g. ``n_timesteps=50_000`` or ``env_id=...``.

    Returns:
        The configuration.

    Raises:
        ConfigError: No ``config.yaml`` in ``out_dir``, or a malformed setting.
    """
    out_dir = Path(out_dir)
    settings = _merge({}, _saved_settings(out_dir), str(out_dir / _CONFIG))
    settings = merge_user_settings(
        settings, config_file=config_file, env_kwargs=env_kwargs, overrides=overrides
    )
    return TrainConfig(**settings)


def _label(name: str) -> str:
    flag = _FLAGS.get(name)
    return f"{name} ({flag})" if flag else name


def check_resume_settings(saved: TrainConfig, given: TrainConfig, out_dir: Path) -> TrainConfig:
    """The configuration a resumed run continues with.

    Args:
        saved: The run's saved settings.
        given: The settings passed to ``train`` with ``resume=True``.
        out_dir: The run directory (for messages).

    Returns:
        ``given``, whose differences from ``saved`` are all in :data:`RESUMABLE_SETTINGS`
        (each one is logged).

    Raises:
        ResumeError: A setting outside :data:`RESUMABLE_SETTINGS` differs; the message names
            each one with its saved and given values.
    """
    old, new = saved.to_dict(), given.to_dict()
    # The env first: it is what a changed run differs in most plainly.
    order = sorted(new, key=lambda name: name != "env_id")
    changed = [name for name in order if new[name] != old.get(name)]
    refused = [name for name in changed if name not in RESUMABLE_SETTINGS]
    if refused:
        details = "; ".join(
            f"{_label(name)} is {old.get(name)!r} in the run, {new[name]!r} given"
            for name in refused
        )
        raise ResumeError(
            f"Cannot resume {out_dir} with other settings: {details}. --resume keeps the "
            "settings a run started with: leave those out, or start a new run in another --out."
        )
    for name in changed:
        logger.warning(
            "Resuming %s with %s = %r (the run had %r).", out_dir, name, new[name], old.get(name)
        )
    return given
