"""Checks of what the app hands the interaction log, with messages that name the bad field."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlagent.serving._log_records import DecisionRecord, InteractionLogError, dumps

__all__ = [
    "action_value",
    "boolean",
    "check_probability",
    "decision_row",
    "finite",
    "integer",
    "probabilities_value",
    "taken_propensity",
    "text",
]


def text(value: Any, where: str, *, empty: bool = False) -> str:
    """``value`` if it is a str (non-empty unless ``empty``)."""
    if not isinstance(value, str) or (not empty and not value):
        raise InteractionLogError(f"{where} is {value!r}; expected a non-empty str.")
    return value


def integer(value: Any, where: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int, if it is one (numpy's too) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InteractionLogError(f"{where} is {value!r}; expected an int.")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InteractionLogError(f"{where} is {value!r}; expected an int {bounds}.")
    return int(value)


def finite(value: Any, where: str) -> float:
    """``value`` as a float, if it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InteractionLogError(f"{where} is {value!r}; expected a number.")
    if not math.isfinite(float(value)):
        raise InteractionLogError(f"{where} is {value!r}; expected a finite number.")
    return float(value)


def action_value(value: Any, where: str) -> int | list[int]:
    """An action as an int (``Discrete``) or a list of ints (``MultiDiscrete``)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [integer(a, f"{where}[{i}]", low=0) for i, a in enumerate(value)]
    return integer(value, where, low=0)


def probabilities_value(value: Any, where: str) -> dict[str, float] | list[float]:
    """Probabilities as a dict (action name -> p) or a list (the env's action order)."""
    if isinstance(value, Mapping):
        return {
            text(k, f"a key of {where}"): check_probability(p, f"{where}[{k!r}]")
            for k, p in value.items()
        }
    if isinstance(value, np.ndarray | list | tuple):
        return [check_probability(p, f"{where}[{i}]") for i, p in enumerate(value)]
    raise InteractionLogError(
        f"{where} is a {type(value).__name__}; expected action name -> probability, or the "
        "list of probabilities in the env's action order."
    )


def boolean(value: Any, where: str) -> bool:
    """``value`` if it is a bool (numpy's too)."""
    if not isinstance(value, bool | np.bool_):
        raise InteractionLogError(f"{where} is {value!r}; expected True or False.")
    return bool(value)


def taken_propensity(
    action: int | list[int], action_name: str, probabilities: Mapping[str, float] | Sequence[float]
) -> float:
    """The probability of the taken action under ``probabilities`` (see :class:`DecisionRecord`).

    Raises:
        InteractionLogError: When ``probabilities`` has no entry for the action.
    """
    hint = "; pass DecisionRecord(propensity=...) explicitly"
    if isinstance(probabilities, Mapping):
        if action_name not in probabilities:
            shown = ", ".join(repr(k) for k in list(probabilities)[:5])
            raise InteractionLogError(
                f"probabilities has no entry for the taken action {action_name!r} (it has "
                f"{shown}{', ...' if len(probabilities) > 5 else ''}): key it by action name"
                f"{hint}."
            )
        return float(probabilities[action_name])
    size = len(probabilities)
    if isinstance(action, int):
        index = action
    else:
        slots = len(action)
        n = round(size ** (1.0 / slots)) if slots else 0
        if slots == 0 or n**slots != size or max(action) >= n:
            raise InteractionLogError(
                f"probabilities has {size} entries, not n ** {slots} for the slate {action} "
                f"of {slots} positions among n candidates (the joint over ordered slates, in "
                f"row-major order){hint}."
            )
        index = int(np.ravel_multi_index(tuple(action), (n,) * slots))
    if not 0 <= index < size:
        raise InteractionLogError(
            f"probabilities has {size} entries, none for the action {action} (index {index}): "
            f"give the full vector in the env's action order{hint}."
        )
    return float(probabilities[index])


def check_probability(value: float, where: str) -> float:
    """``value`` as a float, if it is a probability in ``[0, 1]``."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise InteractionLogError(f"{where} is {value!r}, not a number in [0, 1].") from None
    if not 0.0 <= p <= 1.0:  # also rejects nan
        raise InteractionLogError(f"{where} is {value!r}, not a probability in [0, 1].")
    return p


def decision_row(record: DecisionRecord, where: str) -> tuple:
    """The ``decisions`` columns (:data:`DECISION_COLUMNS` order) of a checked record."""
    if not isinstance(record, DecisionRecord):
        raise InteractionLogError(f"{where} is a {type(record).__name__}, not a DecisionRecord.")
    action = action_value(record.action, f"{where}.action")
    action_name = text(record.action_name, f"{where}.action_name")
    probabilities = probabilities_value(record.probabilities, f"{where}.probabilities")
    if record.propensity is None:
        propensity = taken_propensity(action, action_name, probabilities)
    else:
        propensity = check_probability(record.propensity, f"{where}.propensity")
    planner = None if record.planner is None else dumps(dict(record.planner), where="planner")
    return (
        text(record.session_id, f"{where}.session_id"),
        integer(record.step, f"{where}.step", low=0),
        finite(record.time, f"{where}.time"),
        dumps(record.observation, where=f"{where}.observation"),
        text(record.observation_text, f"{where}.observation_text", empty=True),
        dumps(action),
        action_name,
        dumps(probabilities),
        propensity,
        planner,
        text(record.model_hash, f"{where}.model_hash"),
    )
