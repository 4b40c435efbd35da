"""Reading a YAML file of settings, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["read_yaml_mapping"]


def read_yaml_mapping(path: str | Path, *, what: str, error: type[Exception]) -> dict[str, Any]:
    """The mapping held by a YAML file (``{}`` for an empty file).

    Args:
        path: The file.
        what: How messages name it, e.g. ``"Config file"``.
        error: Exception class raised for a missing, malformed or non-mapping file.

    Returns:
        The mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping of settings, got {type(data).__name__}.")
    return data
