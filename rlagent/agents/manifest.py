"""What a safe model's ``manifest.json`` says about the agent, and how it is read back.

The manifest names every class by a string from a fixed list (the text policy, the text and
bag-of-words extractors, torch activation functions and optimizers, SB3's rollout buffers), so
reading it never imports or runs anything the file chooses. Schedules are numbers, ``"lin_<v>"``
(a linear decay from ``v`` to 0 over a run, as in RL Baselines3 Zoo) or
``{"linear": {"start", "end", "end_fraction"}}``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ManifestError",
    "UnsupportedModelError",
    "class_from_name",
    "name_of_class",
    "policy_kwargs_from_json",
    "policy_kwargs_to_json",
    "ppo_kwargs_from_json",
    "ppo_kwargs_to_json",
    "schedule_from_json",
    "schedule_to_json",
]

#: The ``"format"`` field of every manifest.
FORMAT_NAME = "rlagent-model"
#: The manifest version this rlagent writes and reads.
FORMAT_VERSION = 1

#: PPO constructor arguments stored as plain JSON values, with their JSON types.
_PPO_PLAIN: dict[str, tuple[type, ...]] = {
    "n_steps": (int,),
    "batch_size": (int,),
    "n_epochs": (int,),
    "gamma": (int, float),
    "gae_lambda": (int, float),
    "normalize_advantage": (bool,),
    "ent_coef": (int, float),
    "vf_coef": (int, float),
    "max_grad_norm": (int, float),
    "use_sde": (bool,),
    "sde_sample_freq": (int,),
    "target_kl": (int, float, type(None)),
}
_PPO_SCHEDULES = ("learning_rate", "clip_range", "clip_range_vf")
#: Policy arguments that SB3 fills with ``None`` when gSDE is off.
_SDE_ONLY = ("squash_output", "full_std", "use_expln")
#: Policy keyword arguments that hold classes.
_CLASS_KWARGS = ("activation_fn", "optimizer_class", "features_extractor_class")


class UnsupportedModelError(ValueError):
    """A model cannot be written in the safe format (a custom class, schedule or value)."""


class ManifestError(ValueError):
    """A manifest entry is missing, of the wrong type, or names a class that is not allowed."""


@lru_cache(maxsize=1)
def _allowed_classes() -> dict[str, type]:
    from rlagent.agents.policy import TextActorCriticPolicy
    from rlagent.encoders.bow import BagOfWordsExtractor
    from rlagent.encoders.extractor import TextFeaturesExtractor

    allowed: dict[str, type] = {
        "rlagent.agents.TextActorCriticPolicy": TextActorCriticPolicy,
        "rlagent.encoders.TextFeaturesExtractor": TextFeaturesExtractor,
        "rlagent.encoders.BagOfWordsExtractor": BagOfWordsExtractor,
        "stable_baselines3.common.buffers.RolloutBuffer": RolloutBuffer,
        "stable_baselines3.common.buffers.DictRolloutBuffer": DictRolloutBuffer,
    }
    for name in torch.nn.modules.activation.__all__:
        cls = getattr(torch.nn, name, None)
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
            allowed[f"torch.nn.{name}"] = cls
    for name in ("Adam", "AdamW", "Adamax", "Adagrad", "NAdam", "RAdam", "RMSprop", "SGD"):
        allowed[f"torch.optim.{name}"] = getattr(torch.optim, name)
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

    allowed["stable_baselines3.common.sb2_compat.rmsprop_tf_like.RMSpropTFLike"] = RMSpropTFLike
    return allowed


def name_of_class(cls: type, *, where: str) -> str:
    """The manifest name of an allowed class.

    Raises:
        UnsupportedModelError: ``cls`` is not one of the classes a safe model may name.
    """
    for name, allowed in _allowed_classes().items():
        if allowed is cls:
            return name
    raise UnsupportedModelError(
        f"{where} is {cls.__module__}.{cls.__qualname__}, which the safe model format cannot "
        "name (it stores rlagent's text policy and extractors, torch activation functions and "
        "optimizers only); keep the model as an SB3 .zip and load it with trust=True."
    )


def class_from_name(name: Any, *, where: str) -> type:
    """The allowed class a manifest names.

    Raises:
        ManifestError: ``name`` is not one of the allowed names.
    """
    allowed = _allowed_classes()
    if not isinstance(name, str) or name not in allowed:
        raise ManifestError(
            f"{where} names class {name!r}, which is not one a safe model may use "
            "(rlagent's text policy and extractors, torch.nn activations, torch.optim "
            "optimizers); the file was not written by this rlagent or was modified."
        )
    return allowed[name]


# ----------------------------------------------------------------------------- JSON values
def json_value(value: Any, *, where: str) -> Any:
    """``value`` as standard JSON (tuples become lists, paths strings).

    Raises:
        UnsupportedModelError: A value JSON cannot hold (an object, a function, inf or nan).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsupportedModelError(f"{where} = {value!r} is not a finite number.")
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalar
        return json_value(value.item(), where=where)
    if isinstance(value, list | tuple):
        return [json_value(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnsupportedModelError(f"{where} has a key {key!r} that is not a string.")
            out[key] = json_value(item, where=f"{where}[{key!r}]")
        return out
    raise UnsupportedModelError(
        f"{where} is a {type(value).__name__}, which the safe model format cannot store "
        "(strings, numbers, lists and dicts only)."
    )


# ----------------------------------------------------------------------------- schedules
def schedule_to_json(value: Any, *, where: str) -> Any:
    """A learning-rate or clip-range setting as JSON: a number, ``"lin_<v>"`` or a dict.

    Raises:
        UnsupportedModelError: A schedule other than a constant or SB3's ``LinearSchedule``.
    """
    if isinstance(value, FloatSchedule):
        value = value.value_schedule
    if isinstance(value, ConstantSchedule):
        value = value.val
    if value is None or isinstance(value, int | float):
        return None if value is None else json_value(float(value), where=where)
    if isinstance(value, LinearSchedule):
        start, end, fraction = float(value.start), float(value.end), float(value.end_fraction)
        if end == 0.0 and fraction == 1.0:
            return f"lin_{start!r}"
        return {"linear": {"start": start, "end": end, "end_fraction": fraction}}
    raise UnsupportedModelError(
        f"{where} is {value!r}, a schedule the safe model format cannot store; use a number or "
        "stable_baselines3.common.utils.LinearSchedule (a config's 'lin_<value>')."
    )


def schedule_from_json(value: Any, *, where: str) -> float | LinearSchedule | None:
    """Reverse :func:`schedule_to_json`.

    Raises:
        ManifestError: Not a number, ``"lin_<v>"`` or a linear-schedule dict.
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        if isinstance(value, str) and value.startswith("lin_"):
            return LinearSchedule(float(value[len("lin_") :]), 0.0, 1.0)
        if isinstance(value, Mapping) and isinstance(value.get("linear"), Mapping):
            spec = value["linear"]
            return LinearSchedule(
                float(spec["start"]), float(spec["end"]), float(spec["end_fraction"])
            )
    except (KeyError, TypeError, ValueError):
        pass
    raise ManifestError(
        f"{where} = {value!r}; expected a number, 'lin_<value>' or "
        "{'linear': {'start', 'end', 'end_fraction'}}."
    )


# ----------------------------------------------------------------------------- policy kwargs
def policy_kwargs_to_json(policy: torch.nn.Module) -> dict[str, Any]:
    """The policy's constructor arguments (but its spaces and schedule) as JSON.

    Every argument is written out, defaults included, so a later rlagent with other defaults
    rebuilds the same policy.

    Raises:
        UnsupportedModelError: A class outside the allowed list or a value JSON cannot hold.
    """
    params = dict(policy._get_constructor_parameters())
    for key in ("observation_space", "action_space", "lr_schedule", "use_sde"):
        params.pop(key, None)
    for key in _SDE_ONLY:
        if params.get(key) is None:
            params.pop(key, None)
    params["share_features_extractor"] = bool(policy.share_features_extractor)
    out: dict[str, Any] = {}
    for key, value in params.items():
        where = f"policy_kwargs[{key!r}]"
        if key in _CLASS_KWARGS:
            out[key] = None if value is None else name_of_class(value, where=where)
        else:
            out[key] = json_value(value, where=where)
    return out


def policy_kwargs_from_json(data: Any) -> dict[str, Any]:
    """Policy keyword arguments for ``PPO(policy_kwargs=...)`` from the manifest's JSON.

    Raises:
        ManifestError: Not a dict, or a class name outside the allowed list.
    """
    if not isinstance(data, Mapping):
        raise ManifestError(f"manifest 'policy.kwargs' must be a dict, got {data!r:.60}.")
    kwargs = dict(data)
    for key in _CLASS_KWARGS:
        if kwargs.get(key) is not None:
            kwargs[key] = class_from_name(kwargs[key], where=f"manifest 'policy.kwargs.{key}'")
    return kwargs


# ----------------------------------------------------------------------------- PPO kwargs
def ppo_kwargs_to_json(model: Any) -> dict[str, Any]:
    """The PPO hyperparameters needed to rebuild ``model`` (and train it on) as JSON.

    Raises:
        UnsupportedModelError: A schedule or rollout buffer the format cannot store.
    """
    out: dict[str, Any] = {
        key: json_value(getattr(model, key), where=f"PPO {key}") for key in _PPO_PLAIN
    }
    for key in _PPO_SCHEDULES:
        out[key] = schedule_to_json(getattr(model, key), where=f"PPO {key}")
    out["stats_window_size"] = int(model._stats_window_size)
    buffer = getattr(model, "rollout_buffer_class", None)
    out["rollout_buffer_class"] = (
        None if buffer is None else name_of_class(buffer, where="PPO rollout_buffer_class")
    )
    out["rollout_buffer_kwargs"] = json_value(
        dict(model.rollout_buffer_kwargs or {}), where="PPO rollout_buffer_kwargs"
    )
    return out


def ppo_kwargs_from_json(data: Any) -> dict[str, Any]:
    """``PPO(...)`` keyword arguments from the manifest's ``"ppo"`` section.

    Raises:
        ManifestError: A missing entry, a bad schedule or a class outside the allowed list.
    """
    if not isinstance(data, Mapping):
        raise ManifestError(f"manifest 'ppo' must be a dict, got {data!r:.60}.")
    missing = [key for key in (*_PPO_PLAIN, *_PPO_SCHEDULES) if key not in data]
    if missing:
        raise ManifestError(f"manifest 'ppo' lacks {', '.join(missing)}.")
    kwargs: dict[str, Any] = {}
    for key, kinds in _PPO_PLAIN.items():
        value = data[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ManifestError(f"manifest 'ppo.{key}' = {value!r} has the wrong type.")
        kwargs[key] = value
    for key in _PPO_SCHEDULES:
        kwargs[key] = schedule_from_json(data[key], where=f"manifest 'ppo.{key}'")
    if kwargs["clip_range"] is None:
        raise ManifestError("manifest 'ppo.clip_range' must not be null.")
    kwargs["stats_window_size"] = int(data.get("stats_window_size", 100))
    buffer = data.get("rollout_buffer_class")
    kwargs["rollout_buffer_class"] = (
        None
        if buffer is None
        else class_from_name(buffer, where="manifest 'ppo.rollout_buffer_class'")
    )
    kwargs["rollout_buffer_kwargs"] = dict(data.get("rollout_buffer_kwargs") or {})
    return kwargs


def dumps(manifest: Mapping[str, Any]) -> str:
    """The manifest as standard JSON text, indented, with lists of numbers on one line."""
    return _dumps(manifest, "") + "\n"


def _dumps(value: Any, indent: str) -> str:
    inner = indent + "  "
    if isinstance(value, Mapping) and value:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        items = [f"{inner}{_dumps(v, inner)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    return json.dumps(value, allow_nan=False)


def require(manifest: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``manifest[key]``, checked to be of ``kind``.

    Raises:
        ManifestError: Missing or of another type.
    """
    if key not in manifest:
        raise ManifestError(f"manifest.json has no {key!r} entry.")
    value = manifest[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ManifestError(f"manifest.json {key!r} has the wrong type ({type(value).__name__}).")
    return value
