"""Write episodes as a Minari dataset in a folder of your choosing: the one writer of datasets.

Both writers of rlagent datasets go through :class:`DatasetWriter`: ``rlagent logs export``
(:func:`rlagent.serving.export_minari`, an interaction log) and ``rlagent collect``
(:func:`rlagent.datasets.collect`, episodes played in the simulator). It writes with Minari's own
storage API (``EpisodeBuffer`` written by ``MinariStorage`` in the ``arrow`` format, what
``minari.create_dataset_from_buffers`` does, but into ``DIR/data`` rather than ``~/.minari``),
so that :func:`rlagent.datasets.read_episodes` and ``minari.MinariDataset(DIR / "data")`` read
it back, and ``minari.load_dataset(dataset_id)`` does once ``DIR`` is moved to
``$MINARI_DATASETS_PATH/<dataset_id>``.

The output folder: new, empty, or (with ``overwrite``) an earlier rlagent dataset, which a marker
file (:data:`DATASET_MARKER`) identifies; a folder holding anything else is never emptied.

The dataset's metadata (``DIR/data/metadata.json``) holds Minari's fields plus an ``rlagent``
entry: ``source``, ``env_id``, ``env_kwargs``, ``info_alignment`` (``"decision"``: info entry
``t`` belongs to observation ``t``) and whatever the caller adds.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlagent._folders import empty_folder, has_marker, write_marker_file

__all__ = [
    "DATASET_MARKER",
    "DatasetWriteError",
    "DatasetWriter",
    "episode_buffer",
    "observation_columns",
    "write_dataset",
]

#: The file that marks a folder as an rlagent dataset (so that ``overwrite`` may replace it).
DATASET_MARKER = "rlagent-dataset.json"
#: The marker earlier exports wrote; such folders are rlagent datasets too.
_LEGACY_MARKERS = ("rlagent-export.json",)
#: The Minari storage format written (``pyarrow``; ``hdf5`` would need ``h5py``).
DATA_FORMAT = "arrow"
_INSTALL_HINT = 'install it with pip install "rlagent[datasets]" (minari[arrow]>=0.5)'


class DatasetWriteError(ValueError):
    """A dataset cannot be written: its folder or its id."""


def import_minari(purpose: str = "Writing datasets") -> Any:
    """``minari`` (with its storage and pyarrow), or an ImportError that says what to install."""
    try:
        import minari
        from minari.dataset.minari_storage import MinariStorage  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{purpose} needs minari: {_INSTALL_HINT}.") from exc
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"Minari's arrow format needs pyarrow: {_INSTALL_HINT}.") from exc
    return minari


def observation_columns(space: Any, values: Sequence[Any]) -> Any:
    """Observations (a list) as Minari's column layout: dicts and tuples of per-step columns.

    Args:
        space: The observation space.
        values: ``T + 1`` observations of that space.

    Returns:
        Dicts and tuples (as the space nests them) of per-step lists, arrays for Boxes.
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return {
            k: observation_columns(sub, [v[k] for v in values]) for k, sub in space.spaces.items()
        }
    if isinstance(space, spaces.Tuple):
        return tuple(
            observation_columns(sub, [v[i] for v in values]) for i, sub in enumerate(space.spaces)
        )
    if isinstance(space, spaces.Box | spaces.MultiDiscrete | spaces.MultiBinary):
        return np.stack([np.asarray(v, dtype=space.dtype) for v in values])
    return list(values)


def episode_buffer(
    episode_id: int,
    observation_space: Any,
    observations: Sequence[Any],
    actions: Sequence[Any],
    rewards: Sequence[float],
    terminated: bool,
    truncated: bool,
    infos: Mapping[str, Any],
    *,
    seed: int | None = None,
) -> Any:
    """One episode of ``T`` decisions as a Minari ``EpisodeBuffer``.

    Args:
        episode_id: Its index in the dataset.
        observation_space: The env's observation space.
        observations: ``T + 1`` observations (the last one follows the last action).
        actions: ``T`` actions.
        rewards: ``T`` rewards.
        terminated: Whether the episode ended at its last step.
        truncated: Whether it was cut short there.
        infos: Columns of ``T + 1`` entries each (entry ``t`` belongs to observation ``t``):
            lists, or arrays ``[T + 1, ...]`` (a one-dimensional array is written as a list:
            Minari 0.5's arrow storage cannot read back a 1-D array info).
        seed: The env seed of the episode, when there is one.

    Returns:
        The buffer.
    """
    from minari.data_collector import EpisodeBuffer

    n = len(actions)
    columns = {
        key: value.tolist() if isinstance(value, np.ndarray) and value.ndim == 1 else value
        for key, value in infos.items()
    }
    return EpisodeBuffer(
        id=episode_id,
        seed=seed,
        observations=observation_columns(observation_space, observations),
        actions=list(actions),
        rewards=[float(r) for r in rewards],
        terminations=[False] * (n - 1) + [bool(terminated)],
        truncations=[False] * (n - 1) + [bool(truncated)],
        infos=columns,
    )


@dataclass(frozen=True)
class DatasetWriter:
    """Writes datasets for one command, whose name and flags its error messages use.

    Attributes:
        command: The command, for messages (``"rlagent collect"``).
        flag: The flag that names the output folder (``"--out"``).
        noun: What an earlier output is called (``"dataset"``, ``"export"``).
        error: The exception class raised for a folder or id that cannot be used.
    """

    command: str = "rlagent collect"
    flag: str = "--out"
    noun: str = "dataset"
    error: type[Exception] = DatasetWriteError

    def check_out_dir(self, out_dir: str | os.PathLike, overwrite: bool) -> None:
        """Raise unless ``out_dir`` may be written (nothing is changed on disk).

        Raises:
            error: ``out_dir`` is a file, or not empty (without ``overwrite``), or holds files
                that are not an rlagent dataset.
        """
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise self.error(f"{out} is a file; {self.flag} takes a folder for the dataset.")
        if out.is_dir() and any(out.iterdir()):
            if not overwrite:
                raise self.error(
                    f"{out} is not empty; pass --overwrite (overwrite=True) to replace an earlier "
                    f"{self.noun} there, or choose a new folder."
                )
            if not any(has_marker(out, m) for m in (DATASET_MARKER, *_LEGACY_MARKERS)):
                raise self.error(
                    f"{out} holds files that {self.command} did not write; it replaces only "
                    "rlagent datasets: choose a new or empty folder."
                )

    def check_dataset_id(self, dataset_id: str) -> None:
        """Raise unless ``dataset_id`` is a Minari id (``namespace/name-v0``)."""
        import_minari()
        from minari.dataset.minari_dataset import parse_dataset_id

        try:
            parse_dataset_id(dataset_id)
        except ValueError as exc:
            raise self.error(
                f"dataset id {dataset_id!r} is malformed: Minari ids look like "
                "namespace/name-v0 (letters, digits, - and _)."
            ) from exc

    def write(
        self,
        out_dir: str | os.PathLike,
        episodes: Iterable[Any],
        *,
        env_spec: Any,
        observation_space: Any,
        action_space: Any,
        dataset_id: str,
        rlagent_metadata: Mapping[str, Any],
        algorithm_name: str,
        description: str,
        episode_metadata: Sequence[Mapping[str, Any]] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write ``episodes`` (Minari ``EpisodeBuffer`` s) as a dataset in ``out_dir``.

        Args:
            out_dir: The dataset folder: new, empty, or an earlier dataset with ``overwrite``.
            episodes: The episodes (:func:`episode_buffer`), ids ``0, 1, ...`` in order.
            env_spec: The env's ``EnvSpec`` (Minari records it; ``None`` is allowed).
            observation_space: The env's observation space.
            action_space: The env's action space.
            dataset_id: Minari's id (``namespace/name-v0``).
            rlagent_metadata: The ``rlagent`` entry of the metadata: at least ``source``,
                ``env_id`` and ``env_kwargs`` (JSON-ready; other values are written as their
                ``repr``).
            algorithm_name: Minari's ``algorithm_name`` (what produced the data).
            description: Minari's ``description``.
            episode_metadata: One JSON-ready dict per episode (Minari's episode metadata).
            overwrite: Replace an earlier rlagent dataset in ``out_dir``.

        Returns:
            ``out_dir`` as an absolute ``Path``.

        Raises:
            error: The folder or the id cannot be used.
            ImportError: minari or pyarrow is not installed.
        """
        minari = import_minari()
        from minari.dataset.minari_storage import MinariStorage

        # Absolute: Minari's size measurement joins a relative folder onto itself.
        out = Path(out_dir).resolve()
        self.check_dataset_id(dataset_id)
        self.check_out_dir(out, overwrite)
        buffers = list(episodes)
        if out.is_dir():
            empty_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        write_marker_file(out, DATASET_MARKER)
        storage = MinariStorage.new(
            out / "data",
            observation_space=observation_space,
            action_space=action_space,
            env_spec=env_spec,
            data_format=DATA_FORMAT,
            jpeg_encoding=False,
        )
        own = {"info_alignment": "decision", **dict(rlagent_metadata)}
        storage.update_metadata(
            {
                "dataset_id": dataset_id,
                "minari_version": minari.__version__,
                "algorithm_name": algorithm_name,
                "description": description,
                "rlagent": json.loads(json.dumps(own, default=repr)),
            }
        )
        # Minari re-measures the whole folder after every episode it writes (quadratic in the
        # episodes: 5,000 would take most of an hour); measure it once, at the end.
        storage.get_size = lambda: 0.0
        try:
            storage.update_episodes(buffers)
            if buffers and episode_metadata is not None:
                metas = [json.loads(json.dumps(dict(m), default=repr)) for m in episode_metadata]
                storage.update_episode_metadata(metas, range(len(buffers)))
        finally:
            del storage.get_size
        storage.update_metadata({"dataset_size": storage.get_size()})
        return out


def default_dataset_id(out_dir: str | os.PathLike, namespace: str, fallback: str) -> str:
    """``namespace/<folder name>-v0``, the folder name made a valid Minari name."""
    name = re.sub(r"[^-_\w]+", "-", Path(out_dir).resolve().name).strip("-_") or fallback
    return f"{namespace}/{name}-v0"


def write_dataset(
    out_dir: str | os.PathLike,
    episodes: Iterable[Any],
    *,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    env_spec: Any,
    observation_space: Any,
    action_space: Any,
    dataset_id: str,
    metadata: Mapping[str, Any] | None = None,
    algorithm_name: str = "rlagent",
    description: str = "",
    episode_metadata: Sequence[Mapping[str, Any]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write episodes as a dataset with the default writer (``rlagent collect``'s messages).

    Args:
        out_dir: The dataset folder (see :meth:`DatasetWriter.write`).
        episodes: ``EpisodeBuffer`` s (:func:`episode_buffer`).
        env_id: The env the episodes were played on.
        env_kwargs: Its keyword arguments.
        env_spec: Its ``EnvSpec``.
        observation_space: Its observation space.
        action_space: Its action space.
        dataset_id: Minari's id.
        metadata: More entries of the ``rlagent`` metadata (``source``...).
        algorithm_name: Minari's ``algorithm_name``.
        description: Minari's ``description``.
        episode_metadata: One dict per episode.
        overwrite: Replace an earlier rlagent dataset in ``out_dir``.

    Returns:
        ``out_dir``.

    Raises:
        DatasetWriteError: The folder or the id cannot be used.
        ImportError: minari or pyarrow is not installed.
    """
    own = {"env_id": env_id, "env_kwargs": dict(env_kwargs), **dict(metadata or {})}
    return DatasetWriter().write(
        out_dir,
        episodes,
        env_spec=env_spec,
        observation_space=observation_space,
        action_space=action_space,
        dataset_id=dataset_id,
        rlagent_metadata=own,
        algorithm_name=algorithm_name,
        description=description,
        episode_metadata=episode_metadata,
        overwrite=overwrite,
    )
