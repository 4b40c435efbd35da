"""Read logged episodes with their propensities from a Minari dataset folder.

:func:`read_episodes` is the one reader of rlagent's logged-decision datasets: an exported
interaction log (``rlagent logs export``) and, with the same layout, a dataset collected in the
simulator. The layout it reads (Minari's, plus two info keys):

* ``observations``: ``T + 1`` per episode (the last one follows the last action);
* ``actions``, ``rewards``, ``terminations``, ``truncations``: ``T`` each;
* ``infos["action_probabilities"]``: ``[T + 1, A]``, row ``t < T`` the behaviour policy's full
  distribution at decision ``t`` (in the env's action order: ``Discrete(n)`` actions ``0..n-1``;
  ``MultiDiscrete(nvec)`` every ordered slate in row-major order);
* ``infos["propensity"]``: ``T + 1``, entry ``t < T`` the probability of the action taken at ``t``.

Entry ``t`` of every info belongs to observation ``t`` (the decision made on it); entry ``T``
belongs to the final observation and is dropped from :attr:`Episode.action_probabilities` and
:attr:`Episode.propensities`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DatasetError", "Episode", "read_episodes"]

_REQUIRED_INFOS = ("action_probabilities", "propensity")


class DatasetError(ValueError):
    """A folder is not a Minari dataset of logged decisions that rlagent can read."""


@dataclass(frozen=True, eq=False)
class Episode:
    """One episode of logged decisions.

    Attributes:
        id: Its index in the dataset.
        observations: ``T + 1`` env-format observations (dicts, tuples of str, arrays).
        actions: ``[T]`` (``Discrete``) or ``[T, k]`` (``MultiDiscrete``) actions taken.
        rewards: ``[T]`` float64 rewards.
        terminated: Whether the episode ended (else it was cut short: truncated).
        truncated: Whether it was truncated.
        action_probabilities: ``[T, A]`` the behaviour policy's distribution at each decision.
        propensities: ``[T]`` the probability of each action taken.
        infos: Every info column, ``T + 1`` entries each (see the module docstring).
        metadata: The episode's Minari metadata (for an exported log: ``session``).
    """

    id: int
    observations: list[Any]
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    action_probabilities: np.ndarray
    propensities: np.ndarray
    infos: Mapping[str, np.ndarray] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rewards)


def _data_path(dataset_dir: Path) -> Path:
    for candidate in (dataset_dir / "data", dataset_dir):
        if (candidate / "metadata.json").is_file():
            return candidate
    raise DatasetError(
        f"{dataset_dir} is not a Minari dataset (no data/metadata.json in it); pass the folder "
        "that rlagent logs export --to (or minari) wrote."
    )


def _observation_at(space: Any, data: Any, t: int) -> Any:
    """Observation ``t`` of Minari's column layout (dicts and tuples of per-step columns)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return {k: _observation_at(sub, data[k], t) for k, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_observation_at(sub, data[i], t) for i, sub in enumerate(space.spaces))
    if isinstance(space, spaces.Discrete):
        return int(data[t])
    if isinstance(data, np.ndarray):
        return data[t].copy()
    return data[t]


def read_episodes(dataset_dir: str | os.PathLike) -> list[Episode]:
    """Every episode of a logged-decision dataset, in order.

    Args:
        dataset_dir: The dataset folder (the one holding ``data/``), or its ``data`` folder.

    Returns:
        The episodes.

    Raises:
        DatasetError: Not a Minari dataset, or one without the propensity infos.
        ImportError: minari is not installed.
    """
    try:
        import minari
    except ImportError as exc:
        raise ImportError(
            'Reading datasets needs minari: pip install "rlagent[datasets]" (minari[arrow]>=0.5).'
        ) from exc
    path = _data_path(Path(dataset_dir))
    try:
        dataset = minari.MinariDataset(path)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} cannot be read as a Minari dataset: {exc}") from exc
    space = dataset.observation_space
    storage = dataset.storage
    metadata = list(storage.get_episode_metadata(range(dataset.total_episodes)))
    episodes = []
    for index, data in enumerate(dataset.iterate_episodes()):
        missing = [key for key in _REQUIRED_INFOS if key not in data.infos]
        if missing:
            raise DatasetError(
                f"Episode {index} of {path} has no {', '.join(missing)} in its infos: the "
                "dataset does not record the behaviour policy's probabilities, which off-policy "
                "evaluation needs (write it with rlagent logs export or rlagent collect)."
            )
        steps = len(data.rewards)
        infos = dict(data.infos)
        episodes.append(
            Episode(
                id=int(data.id),
                observations=[
                    _observation_at(space, data.observations, t) for t in range(steps + 1)
                ],
                actions=np.asarray(data.actions),
                rewards=np.asarray(data.rewards, dtype=np.float64),
                terminated=bool(data.terminations[-1]) if steps else False,
                truncated=bool(data.truncations[-1]) if steps else False,
                action_probabilities=np.asarray(infos["action_probabilities"][:steps]),
                propensities=np.asarray(infos["propensity"][:steps], dtype=np.float64),
                infos=infos,
                metadata=metadata[index],
            )
        )
    return episodes
