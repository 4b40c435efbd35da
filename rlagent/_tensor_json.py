"""Nested Python state as JSON plus a flat dict of tensors: a pickle-free way to save it.

:func:`encode` turns a structure of dicts, lists, tuples, strings, numbers, ``None``, numpy
arrays and torch tensors into a JSON-safe structure in which every array or tensor is replaced by
a reference into a flat ``{name: tensor}`` dict (to store with safetensors); :func:`decode`
reverses it. Tuples, dicts with non-string keys (an optimizer's ``state`` is keyed by integers)
and non-finite floats keep their type through markers, so a decoded structure equals the
original (numpy scalars come back as Python numbers). Nothing is ever unpickled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["TensorJSONError", "decode", "encode"]

_TENSOR = "__tensor__"
_ARRAY = "__ndarray__"
_TUPLE = "__tuple__"
_ITEMS = "__items__"
_FLOAT = "__float__"
_MARKERS = (_TENSOR, _ARRAY, _TUPLE, _ITEMS, _FLOAT)


class TensorJSONError(ValueError):
    """A value cannot be stored as JSON plus tensors, or stored data is malformed."""


def encode(value: Any, tensors: dict[str, torch.Tensor], *, where: str = "state") -> Any:
    """A JSON-safe copy of ``value``; arrays and tensors go into ``tensors``.

    Args:
        value: The structure to encode.
        tensors: Receives every array and tensor (CPU, contiguous) under a fresh key.
        where: Name of ``value`` in error messages.

    Returns:
        The JSON-safe structure.

    Raises:
        TensorJSONError: For a value of another type (a function, an object...).
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().to("cpu").contiguous().clone()
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TensorJSONError(f"{where} is a numpy array of Python objects; cannot store it.")
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {_ARRAY: key, "dtype": value.dtype.str}
    if isinstance(value, tuple):
        return {_TUPLE: [encode(v, tensors, where=f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, tensors, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not any(m in value for m in _MARKERS):
            return {k: encode(v, tensors, where=f"{where}[{k!r}]") for k, v in value.items()}
        return {
            _ITEMS: [
                [
                    encode(k, tensors, where=f"{where} key"),
                    encode(v, tensors, where=f"{where}[{k!r}]"),
                ]
                for k, v in value.items()
            ]
        }
    raise TensorJSONError(
        f"{where} is a {type(value).__name__}; only dicts, lists, tuples, strings, numbers, "
        "None, numpy arrays and torch tensors can be saved without pickle."
    )


def decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Reverse :func:`encode`.

    Args:
        value: A structure written by :func:`encode` (and read back from JSON).
        tensors: The tensors it refers to.

    Returns:
        The decoded structure.

    Raises:
        TensorJSONError: A reference to a missing tensor or a malformed marker.
    """
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    try:
        if _TENSOR in value:
            return tensors[value[_TENSOR]].clone()
        if _ARRAY in value:
            array = tensors[value[_ARRAY]].numpy()
            return array.astype(np.dtype(value["dtype"]), copy=True)
        if _TUPLE in value:
            return tuple(decode(v, tensors) for v in value[_TUPLE])
        if _ITEMS in value:
            return {decode(k, tensors): decode(v, tensors) for k, v in value[_ITEMS]}
        if _FLOAT in value:
            return float(value[_FLOAT])
    except KeyError as exc:
        raise TensorJSONError(f"Stored state refers to a missing tensor or field {exc}.") from None
    except (TypeError, ValueError) as exc:
        raise TensorJSONError(f"Malformed stored state: {exc}.") from None
    return {k: decode(v, tensors) for k, v in value.items()}
