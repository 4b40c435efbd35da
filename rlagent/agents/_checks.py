"""Range and name checks shared by the settings groups (:mod:`rlagent.agents.settings`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ConfigError", "check_known", "check_ranges", "is_integer", "is_number"]


class ConfigError(ValueError):
    """Raised for a configuration file, setting or override that cannot be used."""


def check_ranges(prefix: str, config: Any, checks: Mapping[str, tuple[bool, str]]) -> None:
    """Raise :class:`ConfigError` for the first field whose check failed.

    Args:
        prefix: Printed before the field name (``"auxiliary."``, ``""``).
        config: The object holding the fields (its values go into the message).
        checks: ``{field: (ok, what was expected)}``.
    """
    for name, (ok, expected) in checks.items():
        if not ok:
            raise ConfigError(
                f"{prefix}{name} = {getattr(config, name)!r} is out of range; expected {expected}"
            )


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_known(data: Mapping[str, Any], known: Iterable[str], source: str, what: str) -> None:
    """Raise :class:`ConfigError` naming the keys of ``data`` not in ``known``."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{source} unknown {what} setting(s) {', '.join(unknown)}; known {what} settings "
            f"are {', '.join(sorted(known))}."
        )
