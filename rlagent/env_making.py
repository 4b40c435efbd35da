"""Build an environment from its id and keyword arguments, with one-line errors for mistakes.

Every rlagent code path that turns an env id into an env goes through :func:`make_env`, which
adds three things to ``gymnasium.make``:

* ``module:EnvName-v0`` imports ``module`` from the current working directory too, when it is
  not importable otherwise (the ``rlagent`` console script does not put the working directory
  on ``sys.path``);
* an unknown id is an :class:`UnknownEnvError` with Gymnasium's "Did you mean" suggestion;
* keyword arguments are checked against the env's constructor before it runs
  (:func:`check_env_kwargs`): a misspelled name or a value of the wrong type is an
  :class:`EnvKwargsError` that names the argument, the value and what is expected.
"""

from __future__ import annotations

import collections.abc
import difflib
import importlib
import inspect
import numbers
import os
import pathlib
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import (
    EnvSpec,
    find_highest_version,
    get_env_id,
    load_env_creator,
    parse_env_id,
    registry,
)

__all__ = [
    "EnvKwargsError",
    "EnvMakingError",
    "UnknownEnvError",
    "check_env_kwargs",
    "find_env_spec",
    "make_env",
]

#: Keyword arguments ``gymnasium.make`` takes itself rather than passing to the env.
_MAKE_OPTIONS = frozenset({"max_episode_steps", "disable_env_checker"})
_CUSTOM_ENV_HINT = (
    "For an env of your own, register it in a module and pass --env module:EnvName-v0 "
    "(docs/custom-envs.md)."
)


class EnvMakingError(ValueError):
    """An environment cannot be built from the id and keyword arguments given."""


class UnknownEnvError(EnvMakingError, gym.error.Error):
    """No environment is registered under the id (or its ``module:`` part cannot be imported)."""


class EnvKwargsError(EnvMakingError):
    """An env keyword argument the env does not take, or a value of the wrong type."""


def _import_module(module: str, env_id: str) -> None:
    """Import ``module``; from the working directory when it is not importable otherwise."""
    parents = {".".join(module.split(".")[: i + 1]) for i in range(module.count(".") + 1)}
    try:
        importlib.import_module(module)
        return
    except ModuleNotFoundError as exc:
        if exc.name not in parents:
            raise  # the module was found, and something it imports is missing
    cwd = os.getcwd()
    if any(os.path.abspath(entry or os.curdir) == cwd for entry in sys.path):
        not_found = f"no module named {module!r} on the Python path"
    else:
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()
        try:
            importlib.import_module(module)
            return
        except ModuleNotFoundError as exc:
            if exc.name not in parents:
                raise
        finally:
            sys.path.remove(cwd)
        not_found = f"no module named {module!r} in the working directory {cwd} or on the path"
    top = module.split(".")[0]
    raise UnknownEnvError(
        f"Cannot import the module of env id {env_id!r}: {not_found}. Run from the folder that "
        f"holds {top}.py (or the package {top}/), or add that folder to PYTHONPATH."
    )


def find_env_spec(env_id: str) -> EnvSpec:
    """The registered spec of ``env_id``, importing its ``module:`` part first if any.

    Args:
        env_id: ``[module:][namespace/]Name[-vN]``, as ``gymnasium.make`` takes it. Without a
            version, the latest registered version.

    Returns:
        The spec.

    Raises:
        UnknownEnvError: Nothing is registered under the id, or its module cannot be imported.
    """
    import envs  # noqa: F401  (registers the bundled ids)

    if not isinstance(env_id, str) or not env_id:
        raise UnknownEnvError(f"An env id must be a non-empty string, got {env_id!r}.")
    module, _, name = env_id.rpartition(":")
    if module:
        _import_module(module, env_id)
    try:
        namespace, base, version = parse_env_id(name)
    except gym.error.Error as exc:
        raise UnknownEnvError(f"{_one_line(exc)} {_CUSTOM_ENV_HINT}") from None
    spec = registry.get(name)
    if spec is None and version is None:
        latest = find_highest_version(namespace, base)
        if latest is not None:
            spec = registry.get(get_env_id(namespace, base, latest))
    if spec is not None:
        return spec
    try:
        gym.spec(name)
        message = f"No registered env with id {name!r}."
    except gym.error.Error as exc:
        message = _one_line(exc)
    if "did you mean" not in message.lower():
        close = difflib.get_close_matches(name, list(registry), n=1)
        message += f" Did you mean {close[0]!r}?" if close else f" {_CUSTOM_ENV_HINT}"
    raise UnknownEnvError(message)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _creator_signature(spec: EnvSpec) -> inspect.Signature | None:
    """The signature of the callable that builds the env, annotations resolved where possible."""
    creator = spec.entry_point
    if creator is None:
        return None
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    try:
        return inspect.signature(creator, eval_str=True)
    except (NameError, TypeError, SyntaxError, AttributeError):
        pass
    try:
        signature = inspect.signature(creator)
    except (TypeError, ValueError):
        return None
    function = creator.__init__ if inspect.isclass(creator) else creator
    namespace = getattr(function, "__globals__", {})
    params = []
    for param in signature.parameters.values():
        annotation = param.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # noqa: S307  (the env's own annotation)
            except Exception:  # noqa: BLE001  (an annotation we cannot resolve is not checked)
                annotation = inspect.Parameter.empty
        params.append(param.replace(annotation=annotation))
    return signature.replace(parameters=params)


def check_env_kwargs(env: str | EnvSpec, env_kwargs: Mapping[str, Any] | None) -> None:
    """Check keyword arguments against the constructor of the env registered as ``env``.

    Names must be parameters of the env's entry point (any name when it takes ``**kwargs``),
    or options of ``gymnasium.make`` itself (``max_episode_steps``, ``disable_env_checker``).
    Values are checked against the parameter's type annotation (or its default's type) where
    that is a plain type: numbers, integers, booleans, strings, paths, lists, mappings,
    literals and unions of these; anything else is left to the env.

    Args:
        env: A registered id (``module:`` prefix allowed) or an ``EnvSpec``.
        env_kwargs: The keyword arguments, e.g. ``{"split": "test", "noise": 0.1}``.

    Raises:
        UnknownEnvError: The id is not registered.
        EnvKwargsError: A name the env does not take (with "did you mean" and the list of its
            arguments), or a value of the wrong type (with the expected type and the default).
    """
    spec = env if isinstance(env, EnvSpec) else find_env_spec(env)
    if not env_kwargs:
        return
    signature = _creator_signature(spec)
    if signature is None:
        return
    params = {
        name: param
        for name, param in signature.parameters.items()
        if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    for key, value in env_kwargs.items():
        param = params.get(key)
        if param is None:
            if takes_any or key in _MAKE_OPTIONS:
                continue
            close = difflib.get_close_matches(key, list(params), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise EnvKwargsError(
                f"{spec.id} has no keyword argument {key!r}{hint} Its arguments: "
                f"{', '.join(params) or 'none'}."
            )
        annotation = param.annotation
        default = param.default
        if annotation is param.empty and default is not param.empty and default is not None:
            annotation = type(default)
        if _accepts(annotation, value) is False:
            shown = "" if default is param.empty else f" (default: {_show(default)})"
            raise EnvKwargsError(
                f"{spec.id}: {key} expects {_describe(annotation)}, got {_show(value)}{shown}."
            )


_SEQUENCES = (tuple, list, collections.abc.Sequence, typing.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping, typing.Mapping)
_PATHS = (os.PathLike, pathlib.Path, pathlib.PurePath)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _accepts(annotation: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``annotation``: True, False, or None when it cannot tell."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if _is_union(annotation):
        results = [_accepts(arg, value) for arg in args]
        if True in results:
            return True
        return None if None in results else False
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool | np.bool_)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _PATHS:
        return isinstance(value, str | os.PathLike)
    base = origin or annotation
    if base in _SEQUENCES:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            return False
        if base is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return False
            results = [_accepts(a, v) for a, v in zip(args, value, strict=True)]
        elif args:
            results = [_accepts(args[0], v) for v in value]
        else:
            return True
        if False in results:
            return False
        return None if None in results else True
    if base in _MAPPINGS:
        return isinstance(value, Mapping)
    if isinstance(base, type) and isinstance(value, base):
        return True
    return None  # a class of the env's own: the env decides what it accepts


def _describe(annotation: Any) -> str:
    """``annotation`` in words: ``"a number"``, ``"an integer or null"``..."""
    if _is_union(annotation):
        args = typing.get_args(annotation)
        words = list(dict.fromkeys(_describe(a) for a in args if a is not type(None)))
        if type(None) in args:
            words.append("null")
        return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if annotation is None or annotation is type(None):
        return "null"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    if annotation in _PATHS:
        return "a file path"
    base = origin or annotation
    if base in _SEQUENCES:
        if base is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values"
        return "a list"
    if base in _MAPPINGS:
        return "a mapping"
    return f"a {getattr(base, '__name__', str(base))}"


def _show(value: Any) -> str:
    """A value as a user writes it in ``--env-kwargs`` or YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def make_env(
    env_id: str | EnvSpec, env_kwargs: Mapping[str, Any] | None = None, **make_kwargs: Any
) -> gym.Env:
    """``gymnasium.make(env_id, **env_kwargs, **make_kwargs)``, after checking both.

    Args:
        env_id: A registered id (``module:`` prefix allowed, see the module docstring) or an
            ``EnvSpec``.
        env_kwargs: The env's keyword arguments (``--env-kwargs``, a config's ``env_kwargs``).
        **make_kwargs: Further arguments for ``gymnasium.make``, e.g. ``render_mode="ansi"``
            or ``max_episode_steps=50``.

    Returns:
        The environment, wrapped as ``gymnasium.make`` wraps it.

    Raises:
        UnknownEnvError: The id is not registered, or its module cannot be imported.
        EnvKwargsError: See :func:`check_env_kwargs`.
    """
    spec = env_id if isinstance(env_id, EnvSpec) else find_env_spec(env_id)
    kwargs = {**dict(env_kwargs or {}), **make_kwargs}
    check_env_kwargs(spec, kwargs)
    return gym.make(spec, **kwargs)
