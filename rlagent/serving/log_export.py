"""Export an interaction log to a Minari dataset: one episode per session, with propensities.

:func:`export_minari` writes, with rlagent's one dataset writer
(:mod:`rlagent.datasets.writing`: Minari's own storage API, ``EpisodeBuffer`` written by
``MinariStorage`` in the ``arrow`` format, into a folder of your choosing rather than
``~/.minari``), a dataset that :func:`rlagent.datasets.read_episodes` and
``minari.MinariDataset(DIR / "data")`` read back; ``rlagent collect`` writes the same layout.

Each session with at least one decision becomes one episode of ``T`` decisions, in step order:

* ``observations`` (``T + 1``): the env-format observation of each decision, then a final one
  that repeats the last decision's observation (the log holds no observation after the last
  action; a terminated episode's final observation is never bootstrapped from).
* ``actions`` (``T``): the actions taken, in the env's action space.
* ``rewards`` (``T``): the sum of the ``reward`` of the feedback that names the step; feedback
  on the whole session (no step) adds its ``reward`` to the last step. ``resolved`` and
  ``rating`` are not turned into rewards (the env's reward for a resolution is not known to the
  log): they stay in ``infos["feedback"]``, raw. No feedback: reward 0.
* ``terminations`` / ``truncations``: a session ended with ``end_session`` terminates at its
  last step; a session still open when exported is truncated there.
* ``infos`` (``T + 1`` entries, aligned with the observations: entry ``t < T`` describes
  decision ``t``; entry ``T`` belongs to the final observation):

  ====================== ============================================ ========================
  key                    entry ``t < T``                              entry ``T``
  ====================== ============================================ ========================
  action_probabilities   ``[T + 1, A]`` float64, the full distribution all NaN
                         in the env's action order (below)
  propensity             probability of the taken action              NaN
  model_hash             the deciding model's hash                    ``""``
  session_id             the session's id                             the session's id
  time                   decision time, Unix seconds                  end time (else last t)
  step                   the decision's step in the log               -1
  action_name            the taken action's name                      ``""``
  observation_text       the log's human-readable observation         ``""``
  planner                the planner's record, JSON (``"null"``)      ``"null"``
  feedback               JSON list of the feedback naming this step   JSON list of the
                         (``FeedbackRecord`` fields)                  session's own feedback
  ====================== ============================================ ========================

``planner`` and ``feedback`` hold standard JSON written as the log writes its JSON columns;
:func:`rlagent.serving.interaction_log.decode_json` reads them back with tuples and arrays.

The action order: ``Discrete(n)``: actions ``0..n-1``; a probabilities mapping is keyed by the
env's ``action_names`` (or ``"0"``, ``"1"``... for an env without them), and an action it does
not name gets 0. ``MultiDiscrete(nvec)``: every ordered slate in row-major order
(``np.ravel_multi_index``), ``prod(nvec)`` entries; a mapping is keyed ``"i,j,..."``.

Each episode's metadata (``minari``'s per-episode ``metadata.json``) holds the session's id,
kind, start and end times, end reason and meta; the dataset's metadata holds an ``rlagent``
entry with the log's path, env, schema version and the sessions skipped (no decisions).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rlagent.datasets.writing import (
    DATA_FORMAT,
    DATASET_MARKER,
    DatasetWriter,
    default_dataset_id,
    episode_buffer,
    import_minari,
)
from rlagent.serving._log_records import InteractionLogError, dumps
from rlagent.serving.interaction_log import SCHEMA_VERSION, InteractionLog

__all__ = ["DATA_FORMAT", "EXPORT_MARKER", "LogExportError", "export_minari"]

#: The file that marks an export folder (any rlagent dataset) as written by rlagent.
EXPORT_MARKER = DATASET_MARKER
_SAME_ENV = (
    "export with the env the log was written for (the default: the log's env_id and env_kwargs)"
)


class LogExportError(InteractionLogError):
    """A log cannot be exported: its folder, its env, or a record that does not fit the env."""


#: Writes exports, with ``rlagent logs export``'s flags in its messages.
_WRITER = DatasetWriter(
    command="rlagent logs export", flag="--to", noun="export", error=LogExportError
)


def _action_keys(action_space: Any, env: Any) -> tuple[list[str], Any]:
    """The name of every action in the env's order, and a function action -> flat index."""
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        names = getattr(env.unwrapped, "action_names", None)
        start = int(action_space.start)
        n = int(action_space.n)
        if names is None or len(names) != n:
            names = [str(start + i) for i in range(n)]
        return list(names), lambda a: int(a) - start
    if isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        shape = tuple(int(n) for n in action_space.nvec)
        names = [",".join(map(str, idx)) for idx in np.ndindex(*shape)]
        return names, lambda a: int(np.ravel_multi_index(tuple(int(x) for x in a), shape))
    raise LogExportError(
        f"The env's action space is {action_space}; export handles Discrete and MultiDiscrete "
        "action spaces."
    )


def _probability_vector(
    probabilities: Mapping[str, float] | Sequence[float], names: list[str], where: str
) -> np.ndarray:
    if isinstance(probabilities, Mapping):
        index = {name: i for i, name in enumerate(names)}
        unknown = [k for k in probabilities if k not in index]
        if unknown:
            raise LogExportError(
                f"{where} names the action {unknown[0]!r}, which the env does not have (its "
                f"actions: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); "
                f"{_SAME_ENV}."
            )
        vector = np.zeros(len(names), dtype=np.float64)
        for key, p in probabilities.items():
            vector[index[key]] = p
        return vector
    if len(probabilities) != len(names):
        raise LogExportError(
            f"{where} has {len(probabilities)} probabilities; the env has {len(names)} actions: "
            f"{_SAME_ENV}."
        )
    return np.asarray(probabilities, dtype=np.float64)


def _check_observation(space: Any, value: Any, where: str) -> None:
    """Raise unless ``value`` has the structure of ``space`` (Minari stores it column-wise)."""
    from gymnasium import spaces

    problem = None
    if isinstance(space, spaces.Dict):
        if not isinstance(value, Mapping) or set(value) != set(space.spaces):
            problem = f"expected a dict with the keys {sorted(space.spaces)}"
        else:
            for key, sub in space.spaces.items():
                _check_observation(sub, value[key], f"{where}[{key!r}]")
    elif isinstance(space, spaces.Tuple):
        if not isinstance(value, tuple | list) or len(value) != len(space.spaces):
            problem = f"expected a tuple of {len(space.spaces)}"
        else:
            for i, sub in enumerate(space.spaces):
                _check_observation(sub, value[i], f"{where}[{i}]")
    elif isinstance(space, spaces.Text):
        if not isinstance(value, str):
            problem = "expected a str"
    elif isinstance(space, spaces.Box | spaces.MultiDiscrete | spaces.MultiBinary):
        if np.shape(value) != space.shape:
            problem = f"expected an array of shape {space.shape}"
    elif isinstance(space, spaces.Discrete):
        if not isinstance(value, int | np.integer):
            problem = "expected an int"
    else:
        problem = f"export does not handle {type(space).__name__} observation spaces"
    if problem:
        raise LogExportError(f"{where} is {_short(value)}; {problem}: {_SAME_ENV}.")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _episode(
    log: InteractionLog,
    session: Any,
    decisions: list[Any],
    spaces_: tuple[Any, Any],
    keys: Any,
    episode_id: int,
) -> Any:
    """The session's decisions and feedback as a Minari ``EpisodeBuffer``."""
    observation_space, action_space = spaces_
    names, flat_index = keys
    feedback = log.feedback(session.session_id)
    steps = {d.step: t for t, d in enumerate(decisions)}
    n = len(decisions)
    rewards = np.zeros(n, dtype=np.float64)
    per_step: list[list[Any]] = [[] for _ in range(n + 1)]
    for row in feedback:
        t = n - 1 if row.step is None else steps[row.step]
        per_step[n if row.step is None else t].append(row)
        if row.reward is not None:
            rewards[t] += row.reward
    observations, actions, probs = [], [], np.full((n + 1, len(names)), np.nan)
    for t, d in enumerate(decisions):
        where = f"session {session.session_id!r} step {d.step}"
        _check_observation(observation_space, d.observation, f"{where}: the observation")
        if not action_space.contains(np.asarray(d.action, dtype=action_space.dtype)):
            raise LogExportError(
                f"{where}: the action {d.action} is not in the env's action space "
                f"{action_space}: {_SAME_ENV}."
            )
        observations.append(d.observation)
        actions.append(d.action if isinstance(d.action, int) else np.asarray(d.action))
        probs[t] = _probability_vector(d.probabilities, names, f"{where}: probabilities")
        if not 0 <= flat_index(d.action) < len(names):
            raise LogExportError(f"{where}: the action {d.action} has no probability entry.")
    observations.append(observations[-1])
    ended = session.ended is not None
    end_time = session.ended if ended else decisions[-1].time
    infos = {
        "action_probabilities": probs,
        "propensity": [d.propensity for d in decisions] + [math.nan],
        "model_hash": [d.model_hash for d in decisions] + [""],
        "session_id": [session.session_id] * (n + 1),
        "time": [float(d.time) for d in decisions] + [float(end_time)],
        "step": [int(d.step) for d in decisions] + [-1],
        "action_name": [d.action_name for d in decisions] + [""],
        "observation_text": [d.observation_text for d in decisions] + [""],
        "planner": [dumps(d.planner) for d in decisions] + ["null"],
        "feedback": [dumps([asdict(r) for r in rows]) for rows in per_step],
    }
    return episode_buffer(
        episode_id, observation_space, observations, actions, rewards, ended, not ended, infos
    )


def export_minari(
    log_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    dataset_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the interaction log at ``log_path`` as a Minari dataset in ``out_dir``.

    The layout is Minari's own: ``out_dir/data/metadata.json`` and one arrow folder per
    episode, so ``minari.MinariDataset(out_dir / "data")`` loads it, and so does
    ``minari.load_dataset(dataset_id)`` once ``out_dir`` is moved to
    ``$MINARI_DATASETS_PATH/<dataset_id>``. See the module docstring for what each field holds.

    Args:
        log_path: An interaction log (:class:`rlagent.serving.InteractionLog`).
        out_dir: The dataset folder to write: new, empty, or an earlier export with
            ``overwrite``.
        env_id: The env whose spaces the dataset uses (default: the log's).
        env_kwargs: Its keyword arguments (default: the log's).
        dataset_id: Minari's id for it (default ``rlagent-logs/<folder name>-v0``).
        overwrite: Replace an earlier export in ``out_dir``.

    Returns:
        ``out_dir``.

    Raises:
        InteractionLogError: The log cannot be read.
        LogExportError: ``out_dir`` is not empty (without ``overwrite``) or not an export, or a
            record does not fit the env's spaces.
        ImportError: minari or pyarrow is not installed.
    """
    import_minari("Exporting to Minari")
    from rlagent.env_making import make_env

    out = Path(out_dir)
    log = InteractionLog.for_reading(log_path)
    try:
        env_id = env_id or log.env_id
        env_kwargs = dict(log.env_kwargs if env_kwargs is None else env_kwargs)
        dataset_id = dataset_id or default_dataset_id(out, "rlagent-logs", "interactions")
        _WRITER.check_dataset_id(dataset_id)
        env = make_env(env_id, env_kwargs)
        try:
            spaces_ = (env.observation_space, env.action_space)
            keys = _action_keys(env.action_space, env)
            spec = env.spec
        finally:
            env.close()
        buffers, episodes_meta, skipped = [], [], []
        for session in log.sessions():
            decisions = log.decisions(session.session_id)
            if not decisions:
                skipped.append(session.session_id)
                continue
            buffers.append(_episode(log, session, decisions, spaces_, keys, len(buffers)))
            meta = {k: v for k, v in asdict(session).items() if k != "server_id"}
            episodes_meta.append({"session": json.loads(json.dumps(meta, default=repr))})
        log_file = str(log.path.resolve())
    finally:
        log.close()

    return _WRITER.write(
        out,
        buffers,
        env_spec=spec,
        observation_space=spaces_[0],
        action_space=spaces_[1],
        dataset_id=dataset_id,
        rlagent_metadata={
            "source": "interaction_log",
            "log_path": log_file,
            "log_schema_version": SCHEMA_VERSION,
            "env_id": env_id,
            "env_kwargs": env_kwargs,
            "info_alignment": "decision",
            "final_observation": "repeat_last",
            "skipped_sessions": skipped,
        },
        algorithm_name="rlagent serve (logged decisions)",
        description=f"Sessions of the interaction log {log_file}, one episode each.",
        episode_metadata=episodes_meta,
        overwrite=overwrite,
    )
