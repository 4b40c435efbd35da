"""Rows of the interaction log as frozen dataclasses, and the JSON that stores their values.

:func:`dumps` / :func:`loads` store an env-format observation (and any other value the log
keeps) as standard JSON that reads back to an equal value of the same types: tuples, numpy
arrays (dtype and shape kept, so a ``float32`` array comes back bit for bit), numpy scalars
and non-finite floats keep their type through markers:

* ``{"__tuple__": [...]}`` -- a tuple;
* ``{"__ndarray__": nested list, "dtype": "<f4", "shape": [4]}`` -- a numpy array
  (non-finite elements written as the strings ``"nan"``, ``"inf"``, ``"-inf"``);
* ``{"__scalar__": value, "dtype": "<f4"}`` -- a numpy scalar;
* ``{"__float__": "nan"}`` -- a non-finite Python float.

Nothing is ever unpickled; SQLite's JSON functions can read every stored value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DecisionRecord",
    "EventRecord",
    "FeedbackRecord",
    "InteractionLogError",
    "ServerRecord",
    "SessionRecord",
    "dumps",
    "loads",
]

_TUPLE = "__tuple__"
_ARRAY = "__ndarray__"
_SCALAR = "__scalar__"
_FLOAT = "__float__"
_MARKERS = frozenset({_TUPLE, _ARRAY, _SCALAR, _FLOAT})
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class InteractionLogError(ValueError):
    """An interaction log cannot be opened, or a record cannot be written to it or read back."""


@dataclass(frozen=True)
class DecisionRecord:
    """One decision of the served agent, as the app hands it to the log and the readers return it.

    Attributes:
        session_id: The session the decision belongs to (started with ``start_session``).
        step: The decision's index in its session: 0, 1, 2, ... (unique per session).
        time: When the decision was made, Unix seconds (``time.time()``).
        observation: The env-format observation the model decided on (e.g. a ``dict`` of a
            ``tuple`` of str and ``float32`` arrays); read back equal, with the same types.
        observation_text: A human-readable rendering of it (e.g. the newest segments joined).
        action: The action taken: an ``int`` (``Discrete``), or a list of ints
            (``MultiDiscrete``, e.g. a slate of candidate positions).
        action_name: The action's name (e.g. ``"ask_clarify"``, or ``"3,7"`` for a slate).
        probabilities: The distribution the action was chosen from: action name -> probability,
            or the full vector in the env's action order (for ``MultiDiscrete([n] * k)``: the
            ``n ** k`` ordered slates in row-major order, as
            :class:`rlagent.agents.slate.SlateProbabilities` gives them).
        planner: The planner's settings and outputs for this decision (``None``: no planner).
        model_hash: The hash of the model that decided.
        propensity: The probability with which the taken action was chosen. ``None`` when
            writing: the log derives it from ``probabilities`` (the entry named
            ``action_name`` of a mapping, else the entry at the action's index). Pass it
            explicitly when the action was not drawn from ``probabilities`` (``1.0`` for a
            deterministic argmax or a planner's choice). Always set on records read back.
    """

    session_id: str
    step: int
    time: float
    observation: Mapping[str, Any]
    observation_text: str
    action: int | list[int]
    action_name: str
    probabilities: Mapping[str, float] | list[float]
    planner: Mapping[str, Any] | None
    model_hash: str
    propensity: float | None = None


@dataclass(frozen=True)
class SessionRecord:
    """A session: one conversation or one recommendation session.

    Attributes:
        session_id: Its id.
        kind: What kind of session (e.g. ``"customer_service"``, ``"recommendation"``).
        started: When it started, Unix seconds.
        ended: When it ended, Unix seconds; ``None`` while open.
        end_reason: Why it ended (e.g. ``"deleted"``, ``"expired"``, ``"done"``); ``None``
            while open.
        meta: What the app stored with it.
        server_id: The ``servers`` row of the log opening that started it.
    """

    session_id: str
    kind: str
    started: float
    ended: float | None
    end_reason: str | None
    meta: Mapping[str, Any]
    server_id: int


@dataclass(frozen=True)
class FeedbackRecord:
    """Feedback on a session, or on one of its decisions when ``step`` is set.

    Attributes:
        id: Its row id (the value ``record_feedback`` returned).
        session_id: The session.
        step: The decision it is about; ``None``: the session as a whole.
        time: When it was recorded, Unix seconds.
        reward: A numeric reward, if given.
        resolved: Whether the request was resolved, if said.
        rating: A rating from 1 to 5, if given.
        meta: Anything else the app stored with it.
    """

    id: int
    session_id: str
    step: int | None
    time: float
    reward: float | None
    resolved: bool | None
    rating: int | None
    meta: Mapping[str, Any]


@dataclass(frozen=True)
class EventRecord:
    """Something that happened in a session besides a decision (a customer's text, a click).

    Attributes:
        id: Its row id.
        session_id: The session.
        time: When it was recorded, Unix seconds.
        kind: What happened (e.g. ``"customer_text"``, ``"click"``, ``"session_end"``).
        payload: Its data.
    """

    id: int
    session_id: str
    time: float
    kind: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class ServerRecord:
    """One opening of the log for writing, by a server with one model and its settings.

    Attributes:
        id: Its row id (``SessionRecord.server_id``).
        opened: When, Unix seconds.
        model_hash: The model the server loaded.
        settings: The server's settings (planner, batching, ...).
        rlagent_version: The rlagent version that wrote it.
    """

    id: int
    opened: float
    model_hash: str
    settings: Mapping[str, Any]
    rlagent_version: str


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, np.generic):  # before float: np.float64 subclasses float
        if isinstance(value, np.bool_ | np.integer | np.floating | np.str_):
            return {_SCALAR: _encode(value.item(), where), "dtype": value.dtype.str}
        raise InteractionLogError(f"{where} is a numpy {type(value).__name__}; cannot store it.")
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise InteractionLogError(
                f"{where} is a numpy array of dtype {value.dtype}; the log stores arrays of "
                "bool, integer, float or str only: convert it first."
            )
        data = value.tolist()
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            data = np.vectorize(_finite_or_name, otypes=[object])(value).tolist()
        return {_ARRAY: data, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str) or k in _MARKERS]
        if bad:
            raise InteractionLogError(
                f"{where} has the key {bad[0]!r}; the log stores mappings whose keys are str "
                f"and not one of {sorted(_MARKERS)}."
            )
        return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise InteractionLogError(
        f"{where} is a {type(value).__name__}; the log stores None, bool, int, float, str, "
        "tuples, lists, mappings with str keys and numpy arrays: convert it first."
    )


def _finite_or_name(x: float) -> float | str:
    return float(x) if math.isfinite(x) else repr(float(x))


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if _TUPLE in value:
        return tuple(_decode(v) for v in value[_TUPLE])
    if _ARRAY in value:
        dtype = np.dtype(value["dtype"])
        data = value[_ARRAY]
        if dtype.kind == "f":
            data = _names_to_floats(data)
        return np.asarray(data, dtype=dtype).reshape(value["shape"])
    if _SCALAR in value:
        return np.dtype(value["dtype"]).type(_decode(value[_SCALAR]))
    if _FLOAT in value:
        return float(value[_FLOAT])
    return {k: _decode(v) for k, v in value.items()}


def _names_to_floats(data: Any) -> Any:
    if isinstance(data, list):
        return [_names_to_floats(v) for v in data]
    return _NON_FINITE[data] if isinstance(data, str) else data


def dumps(value: Any, *, where: str = "value") -> str:
    """Standard JSON for ``value`` that :func:`loads` turns back into an equal value.

    Args:
        value: None, bool, int, float, str, tuples, lists, mappings with str keys, numpy arrays
            and scalars, nested.
        where: The value's name in error messages.

    Returns:
        Compact JSON text.

    Raises:
        InteractionLogError: For a value of another type (an object, a non-str key...).
    """
    return json.dumps(_encode(value, where), ensure_ascii=False, allow_nan=False)


def loads(text: str | None) -> Any:
    """The value :func:`dumps` stored as ``text`` (``None`` for SQL ``NULL``)."""
    return None if text is None else _decode(json.loads(text))
