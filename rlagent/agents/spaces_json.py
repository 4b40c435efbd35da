"""Gymnasium spaces as plain JSON, for model manifests that load without unpickling.

Supported: ``Dict``, ``Tuple``, ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary`` and
``Text``. A ``Box`` bound equal in every position is written as one number; non-finite bounds
are the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (JSON has no such numbers).

Example:
    >>> from gymnasium import spaces
    >>> space_to_json(spaces.Box(0.0, 1.0, (2, 3)))
    {'type': 'Box', 'shape': [2, 3], 'dtype': 'float32', 'low': 0.0, 'high': 1.0}
    >>> space_from_json(space_to_json(spaces.Discrete(3))) == spaces.Discrete(3)
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["SpaceFormatError", "space_from_json", "space_to_json"]

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class SpaceFormatError(ValueError):
    """A space cannot be written as JSON, or a JSON description is not a space."""


def _number(value: Any) -> int | float | str:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _bound(array: np.ndarray) -> Any:
    flat = array.reshape(-1)
    if flat.size and (np.all(flat == flat[0]) or np.all(np.isnan(flat))):
        return _number(flat[0])
    return _nested(array)


def _nested(array: np.ndarray) -> Any:
    if array.ndim == 0:
        return _number(array.item())
    return [_nested(row) for row in array]


def _parse_numbers(value: Any) -> Any:
    if isinstance(value, list):
        return [_parse_numbers(item) for item in value]
    if isinstance(value, str):
        if value not in _NON_FINITE:
            raise SpaceFormatError(
                f"Expected a number or one of {sorted(_NON_FINITE)}, got {value!r}."
            )
        return _NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpaceFormatError(f"Expected a number, got {value!r}.")
    return value


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A JSON-safe description of ``space``.

    Args:
        space: A ``Dict``, ``Tuple``, ``Box``, ``Discrete``, ``MultiDiscrete``,
            ``MultiBinary`` or ``Text`` space (nested ``Dict`` and ``Tuple`` allowed).

    Returns:
        A dict with a ``"type"`` key and the space's parameters.

    Raises:
        SpaceFormatError: For any other kind of space.
    """
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": [int(n) for n in space.shape],
            "dtype": np.dtype(space.dtype).name,
            "low": _bound(space.low),
            "high": _bound(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {
            "type": "Discrete",
            "n": int(space.n),
            "start": int(space.start),
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": _nested(np.asarray(space.nvec)),
            "start": _nested(np.asarray(space.start)),
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": _nested(np.asarray(space.n))}
    if isinstance(space, spaces.Text):
        return {
            "type": "Text",
            "max_length": int(space.max_length),
            "min_length": int(space.min_length),
            "charset": "".join(sorted(space.character_set)),
        }
    raise SpaceFormatError(
        f"Cannot describe a {type(space).__name__} space in a safe model file; supported: Dict, "
        "Tuple, Box, Discrete, MultiDiscrete, MultiBinary and Text."
    )


def space_from_json(data: Mapping[str, Any]) -> spaces.Space:
    """Rebuild a space written by :func:`space_to_json`.

    Args:
        data: The JSON description.

    Returns:
        The space.

    Raises:
        SpaceFormatError: When ``data`` is not such a description.
    """
    if not isinstance(data, Mapping) or "type" not in data:
        raise SpaceFormatError(f"Expected a space description with a 'type', got {data!r:.80}.")
    kind = data["type"]
    try:
        if kind == "Dict":
            return spaces.Dict({k: space_from_json(s) for k, s in data["spaces"].items()})
        if kind == "Tuple":
            return spaces.Tuple([space_from_json(s) for s in data["spaces"]])
        if kind == "Box":
            shape = tuple(int(n) for n in data["shape"])
            dtype = np.dtype(data["dtype"])
            low = np.broadcast_to(np.asarray(_parse_numbers(data["low"])), shape)
            high = np.broadcast_to(np.asarray(_parse_numbers(data["high"])), shape)
            return spaces.Box(low.astype(dtype), high.astype(dtype), shape, dtype)
        if kind == "Discrete":
            return spaces.Discrete(
                int(data["n"]), start=int(data.get("start", 0)), dtype=data.get("dtype", "int64")
            )
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(
                np.asarray(data["nvec"]),
                dtype=data.get("dtype", "int64"),
                start=None if data.get("start") is None else np.asarray(data["start"]),
            )
        if kind == "MultiBinary":
            n = data["n"]
            return spaces.MultiBinary(n if isinstance(n, int) else list(n))
        if kind == "Text":
            return spaces.Text(
                int(data["max_length"]),
                min_length=int(data.get("min_length", 1)),
                charset=str(data["charset"]),
            )
    except SpaceFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpaceFormatError(f"Malformed {kind} space description: {exc}.") from None
    raise SpaceFormatError(
        f"Unknown space type {kind!r}; expected one of Dict, Tuple, Box, Discrete, "
        "MultiDiscrete, MultiBinary, Text."
    )
