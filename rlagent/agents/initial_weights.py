"""Start a new agent from a saved model's weights (``rlagent train --init MODEL``).

A model learnt offline from logs (``rlagent learn``), or any earlier model, can be the starting
point of PPO: :func:`load_initial_weights` copies its policy's weights (actor, critic, encoder
when it was trained) into a model built from the run's settings, after checking that both read
the same env with the same spaces and encoder, and that the architectures match. PPO's
optimizer, timestep counter and schedules start fresh; the run is a new run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rlagent.agents.loading import ModelEnvMismatchError, _mismatch, read_policy_state
from rlagent.agents.saving import read_manifest, resolve_model_dir
from rlagent.agents.spaces_json import SpaceFormatError, space_from_json

__all__ = ["InitModelError", "load_initial_weights"]


class InitModelError(ModelEnvMismatchError):
    """The initial model does not fit the new agent (another env, spaces, encoder or layers)."""


def _fail(path: Path, detail: str, hint: str) -> InitModelError:
    return InitModelError(f"The initial model {path} does not fit this run: {detail}; {hint}.")


def load_initial_weights(model: Any, path: str | os.PathLike) -> Path:
    """Load the policy weights of the model directory at ``path`` into ``model``.

    Args:
        model: A text agent just built for the run (:func:`rlagent.agents.make_ppo`).
        path: A model directory (:func:`rlagent.agents.save_model`, ``rlagent learn --out``,
            or a run directory's ``model/``).

    Returns:
        The model directory read.

    Raises:
        rlagent.agents.ModelFileError: ``path`` is not a readable model directory.
        InitModelError: The initial model was trained on another env, reads other
            observations, acts in another action space, used another encoder, or has other
            layers (the message says which, and how to fix it).
    """
    path = resolve_model_dir(Path(path))
    manifest = read_manifest(path)
    theirs = manifest.get("rlagent_spec") or {}
    ours = getattr(model, "rlagent_spec", None) or {}
    if theirs.get("env_id") and ours.get("env_id") and theirs["env_id"] != ours["env_id"]:
        raise _fail(
            path,
            f"it was trained on {theirs['env_id']}, this run trains on {ours['env_id']}",
            f"start from a model of {ours['env_id']}, or train on --env {theirs['env_id']}",
        )
    try:
        observation_space = space_from_json(manifest.get("observation_space") or {})
        action_space = space_from_json(manifest.get("action_space") or {})
    except (SpaceFormatError, TypeError, ValueError) as exc:
        raise _fail(
            path, f"its manifest's spaces are unreadable ({exc})", "save it again"
        ) from None
    same_settings = "build the run with the settings the initial model was built with"
    if action_space != model.action_space:
        raise _fail(
            path,
            f"its action space {action_space} is not this run's {model.action_space}",
            f"pass the env_kwargs it was trained with ({theirs.get('env_kwargs') or {}})",
        )
    if observation_space != model.observation_space:
        ours_, theirs_ = (
            getattr(s, "spaces", {}) for s in (model.observation_space, observation_space)
        )
        entries = sorted(set(ours_) ^ set(theirs_)) or sorted(
            k for k in ours_ if ours_[k] != theirs_[k]
        )
        raise _fail(
            path,
            f"its observations are laid out differently (entries {entries} differ: env_kwargs, "
            "max_length, privileged features or action masks)",
            same_settings,
        )
    differs = [
        key
        for key in ("encoder", "encoder_checksum")
        if theirs.get(key) is not None and ours.get(key) is not None and theirs[key] != ours[key]
    ]
    if differs:
        raise _fail(
            path,
            f"it reads text with encoder {theirs.get('encoder')!r} (checksum "
            f"{theirs.get('encoder_checksum')}), this run with {ours.get('encoder')!r} (checksum "
            f"{ours.get('encoder_checksum')})",
            f"pass --encoder {theirs.get('encoder')}",
        )
    try:
        model.policy.load_state_dict(read_policy_state(path), strict=True)
    except RuntimeError as exc:
        raise _fail(path, f"its layers differ ({_mismatch(exc)})", same_settings) from None
    return path
