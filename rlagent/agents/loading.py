"""Loading saved PPO text agents: safe model directories, and pickled files only when trusted.

:func:`load_model` rebuilds an agent from a directory written by
:func:`rlagent.agents.save_model`: the classes come from a fixed list of names (see
:mod:`rlagent.agents.manifest`), the weights are loaded strictly from safetensors, and nothing is
unpickled. A frozen encoder is loaded again by name and its checksum compared with the one
recorded (:class:`rlagent.encoders.EncoderChecksumError`).

:func:`load` is the front door: a model directory loads safely; a pickled file (an SB3 ``.zip``)
only with ``trust=True``, because unpickling runs code stored in the file.
:func:`export_model` converts a trusted ``.zip`` once.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv

from rlagent import _tensor_json
from rlagent.agents import manifest as mf
from rlagent.agents.factory import resolve_device, vec_env_for
from rlagent.agents.policy import TextActorCriticPolicy
from rlagent.agents.saving import (
    MANIFEST,
    OPTIMIZER_FILE,
    WEIGHTS_FILE,
    ModelFileError,
    file_sha256,
    is_model_dir,
    read_manifest,
    resolve_model_dir,
    save_model,
)
from rlagent.agents.spaces_json import SpaceFormatError, space_from_json
from rlagent.agents.text_ppo import TextPPO
from rlagent.agents.trust import UntrustedModelError, is_pickled_model, untrusted_model_message
from rlagent.pipeline import NotATextModelError, pipeline_of

__all__ = [
    "ModelEnvMismatchError",
    "export_model",
    "load",
    "load_model",
    "read_policy_state",
]


class ModelEnvMismatchError(ValueError):
    """The env given to :func:`load_model` does not produce the observations the model reads."""


def _read_tensors(path: Path, name: str, entry: Any) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    file = path / name
    if not file.is_file():
        raise ModelFileError(f"{path} is missing {name}; the model directory is incomplete.")
    expected = entry.get("sha256") if isinstance(entry, Mapping) else None
    if not isinstance(expected, str):
        raise ModelFileError(f"{path / MANIFEST} records no checksum for {name}; it is malformed.")
    if file_sha256(file) != expected:
        raise ModelFileError(
            f"{file} is truncated or corrupt (it does not match the checksum in {MANIFEST}); "
            "save or export the model again."
        )
    try:
        return load_file(os.fspath(file), device="cpu")
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error type)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{file} is not a readable safetensors file ({reason}).") from None


def _with_aliases(tensors: dict[str, torch.Tensor], aliases: Any, file: Path) -> dict[str, Any]:
    if not isinstance(aliases, Mapping):
        raise ModelFileError(f"{MANIFEST} of {file.parent}: 'aliases' must be a dict.")
    for alias, source in aliases.items():
        if source not in tensors:
            raise ModelFileError(f"{file} lacks {source!r}, which {alias!r} refers to.")
        tensors[alias] = tensors[source]
    return tensors


def read_policy_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A saved model's policy ``state_dict`` (CPU tensors), read without building the model.

    For code that works on weights only, such as averaging the weights of checkpoints.

    Args:
        path: The model directory.

    Returns:
        The state dict, every name the policy's ``state_dict()`` has included.

    Raises:
        ModelFileError: As :func:`load_model`, for the path, the manifest and the weights file.
    """
    path = resolve_model_dir(path)
    files = read_manifest(path).get("files")
    entry = files.get(WEIGHTS_FILE) if isinstance(files, Mapping) else None
    tensors = _read_tensors(path, WEIGHTS_FILE, entry)
    return _with_aliases(tensors, (entry or {}).get("aliases", {}), path / WEIGHTS_FILE)


def _vec_env_for(env: Any, spec: Mapping[str, Any] | None, path: Path) -> VecEnv | None:
    if env is None or isinstance(env, VecEnv):
        return env
    if spec is None:
        raise NotATextModelError(
            f"The model at {path} records no observation pipeline (rlagent_spec), so a raw "
            "env cannot be wrapped for it; pass a VecEnv whose observations it reads."
        )
    return vec_env_for(env, spec, pipeline_of(SimpleNamespace(rlagent_spec=dict(spec))))


def _check_spaces(
    vec: VecEnv, observation: gym.Space, action: gym.Space, manifest: Mapping
) -> None:
    env_id = (manifest.get("rlagent_spec") or {}).get("env_id")
    trained = f" (it was trained on {env_id})" if env_id else ""
    if vec.observation_space != observation:
        got, want = vec.observation_space, observation
        if isinstance(got, gym.spaces.Dict) and isinstance(want, gym.spaces.Dict):
            diff = sorted(set(got.spaces) ^ set(want.spaces)) or [
                k for k in want.spaces if got.spaces[k] != want.spaces[k]
            ]
            detail = f"entries {diff} differ"
        else:
            detail = f"got {got}, expected {want}"
        raise ModelEnvMismatchError(
            f"The env's observations do not match the model's ({detail}); pass the env the "
            f"model was trained on{trained}."
        )
    if vec.action_space != action:
        raise ModelEnvMismatchError(
            f"The env's action space {vec.action_space} is not the model's {action}; pass the "
            f"env the model was trained on{trained}."
        )


def load_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "auto",
    env: str | gym.Env | VecEnv | None = None,
) -> PPO:
    """Load a model directory written by :func:`save_model`, without unpickling anything.

    Like SB3's ``PPO.load(path)`` followed by ``model.set_env(env)``, this seeds the global
    random generators and the action space with the model's saved seed when it has one; an
    ``env`` passed in keeps its own seeding.

    Args:
        path: The model directory.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        env: Optional env to attach: an env id (built with the saved ``env_kwargs`` when it is
            the model's own), a raw ``gymnasium.Env`` (wrapped the way the model reads it) or a
            ``VecEnv`` whose observations the model reads.

    Returns:
        The ``PPO`` model, with ``model.rlagent_spec`` restored and, when it was saved, the
        optimizer's state.

    Raises:
        ModelFileError: For a missing path, a run directory, a missing, malformed or unknown
            manifest, a truncated or corrupt weights file, or weights that do not fit the
            architecture the manifest describes.
        ModelEnvMismatchError: ``env``'s observations or actions are not the model's.
        rlagent.encoders.EncoderChecksumError: The encoder on this machine is not the one the
            model was trained with.
    """
    path = resolve_model_dir(path)
    manifest = read_manifest(path)
    try:
        algorithm = mf.require(manifest, "algorithm", str)
        if algorithm != "PPO":
            raise mf.ManifestError(f"manifest.json names algorithm {algorithm!r}; only PPO loads.")
        policy = mf.require(manifest, "policy", dict)
        policy_class = mf.class_from_name(policy.get("class"), where="manifest 'policy.class'")
        if not issubclass(policy_class, TextActorCriticPolicy):
            raise mf.ManifestError(f"manifest 'policy.class' {policy['class']!r} is not a policy.")
        policy_kwargs = mf.policy_kwargs_from_json(policy.get("kwargs"))
        ppo_kwargs = mf.ppo_kwargs_from_json(mf.require(manifest, "ppo", dict))
        observation_space = space_from_json(mf.require(manifest, "observation_space", dict))
        action_space = space_from_json(mf.require(manifest, "action_space", dict))
        n_envs = mf.require(manifest, "n_envs", int)
        seed = manifest.get("seed")
        training = mf.require(manifest, "training", dict)
        num_timesteps = int(training.get("num_timesteps", 0))
        files = mf.require(manifest, "files", dict)
        spec = manifest.get("rlagent_spec")
        if spec is not None and not isinstance(spec, dict):
            raise mf.ManifestError("manifest.json 'rlagent_spec' must be a dict or null.")
    except (mf.ManifestError, SpaceFormatError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path / MANIFEST} is malformed: {exc}") from None
    weights = _with_aliases(
        _read_tensors(path, WEIGHTS_FILE, files.get(WEIGHTS_FILE)),
        (files.get(WEIGHTS_FILE) or {}).get("aliases", {}),
        path / WEIGHTS_FILE,
    )
    optimizer_state = None
    if manifest.get("optimizer") is not None:
        tensors = _read_tensors(path, OPTIMIZER_FILE, files.get(OPTIMIZER_FILE))
        try:
            optimizer_state = _tensor_json.decode(manifest["optimizer"]["state"], tensors)
        except (_tensor_json.TensorJSONError, KeyError, TypeError) as exc:
            raise ModelFileError(
                f"{path / MANIFEST}: unreadable optimizer state ({exc})."
            ) from None

    vec = _vec_env_for(env, spec, path)
    if vec is not None:
        _check_spaces(vec, observation_space, action_space, manifest)
    model = TextPPO(
        policy_class,
        env=vec,
        device=resolve_device(device),
        policy_kwargs=policy_kwargs,
        _init_setup_model=False,
        **ppo_kwargs,
    )
    # The model's own space objects (equal to the env's), so seeding them leaves the env's alone.
    model.observation_space = observation_space
    model.action_space = action_space
    if vec is None:
        model.n_envs = n_envs
    if seed is not None:
        # As PPO.load(path) then set_env(env) does: the global generators and the action space
        # are seeded with the saved seed; an env passed in keeps its own seeding.
        set_random_seed(int(seed), using_cuda=model.device.type == "cuda")
        model.action_space.seed(int(seed))
    model._setup_model()  # model.seed is None here, so the env is not reseeded
    model.seed = seed
    try:
        model.policy.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(
            f"{path / WEIGHTS_FILE} does not fit the architecture in {MANIFEST}: "
            f"{_mismatch(exc)}; the files do not belong together."
        ) from None
    if optimizer_state is not None:
        try:
            model.policy.optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ModelFileError(
                f"{path / OPTIMIZER_FILE} does not fit the policy's optimizer ({exc})."
            ) from None
    _restore_training_state(model, training, num_timesteps)
    model.rlagent_spec = None if spec is None else dict(spec)
    if model.use_sde:
        model.policy.reset_noise()
    return model


def _mismatch(exc: RuntimeError) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = " ".join(lines[1:]) if len(lines) > 1 else (lines[0] if lines else "")
    return detail[:400]


def _restore_training_state(model: PPO, training: Mapping[str, Any], num_timesteps: int) -> None:
    model.num_timesteps = num_timesteps
    model._n_updates = int(training.get("n_updates", 0))
    model._episode_num = int(training.get("episode_num", 0))
    model._current_progress_remaining = float(training.get("current_progress_remaining", 1.0))
    window = int(model._stats_window_size)
    for key, attr in (("episode_info", "ep_info_buffer"), ("episode_success", "ep_success_buffer")):
        items = training.get(key)
        if items is not None:
            setattr(model, attr, deque(items, maxlen=window))


# ----------------------------------------------------------------------------- the gate
def _load_pickled(path: Path, env: Any, device: str | torch.device) -> PPO:
    from rlagent.agents.factory import load as load_sb3

    try:
        return load_sb3(path, env=env, device=device)
    except (
        AssertionError,
        KeyError,
        EOFError,
        RuntimeError,  # torch.load on a truncated or corrupt .pth entry
        zipfile.BadZipFile,
        pickle.UnpicklingError,
    ) as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0].split(". ")[0].rstrip(".") if text else "no detail"
        raise ModelFileError(
            f"{path} could not be read as a Stable-Baselines3 model "
            f"({type(exc).__name__}: {reason}); the file is damaged or not a model: save or "
            "export the model again."
        ) from None


def load(
    path: str | os.PathLike,
    *,
    env: str | gym.Env | VecEnv | None = None,
    device: str | torch.device = "auto",
    trust: bool = False,
) -> PPO:
    """Load a text agent: a model directory safely, a pickled file only when trusted.

    Args:
        path: A model directory (:func:`rlagent.agents.save_model`, ``rlagent export``) or, with
            ``trust``, a Stable-Baselines3 ``.zip``.
        env: Optional env to attach (see :func:`load_model`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        trust: Allow loading a pickled file. Unpickling runs code stored in the file: pass
            True only for files from a source you trust. By default a pickled file is refused
            (nothing in it is read beyond its zip directory or pickle header).

    Returns:
        The ``PPO`` model.

    Raises:
        UntrustedModelError: ``path`` is a pickled model and ``trust`` is False.
        ModelFileError: ``path`` is missing, a run directory or not a model (see
            :func:`load_model`).
    """
    file = Path(path)
    if file.is_file() and is_pickled_model(file):
        if not trust:
            raise UntrustedModelError(untrusted_model_message(file))
        return _load_pickled(file, env, device)
    if file.is_file() and file.suffix == ".zip" and not zipfile.is_zipfile(file):
        raise ModelFileError(
            f"{file} is not a readable zip archive: it is truncated or corrupt, or not a model; "
            "save or export the model again."
        )
    return load_model(file, device=device, env=env)


def export_model(
    zip_path: str | os.PathLike, out_dir: str | os.PathLike, *, include_optimizer: bool = False
) -> Path:
    """Convert a Stable-Baselines3 ``.zip`` you trust into a safe model directory.

    Loading the ``.zip`` unpickles it (runs code stored in it): export only files from a
    source you trust. The directory written loads without that risk, anywhere.

    Args:
        zip_path: The ``.zip`` written by ``model.save`` or ``rlagent train``.
        out_dir: The model directory to write.
        include_optimizer: Keep the optimizer state too (to continue training from it).

    Returns:
        The model directory.

    Raises:
        ModelFileError: ``zip_path`` is missing, already a model directory, or not an SB3
            model.
        UnsupportedModelError: The model uses a class or schedule the safe format cannot
            name.
    """
    source = Path(zip_path)
    if source.is_dir():
        if is_model_dir(source):
            raise ModelFileError(f"{source} is already a safe model directory; nothing to export.")
        resolve_model_dir(source)  # raises the matching explanation
    if not source.is_file():
        resolve_model_dir(source)
    if not is_pickled_model(source):
        raise ModelFileError(
            f"{source} is not a Stable-Baselines3 model (.zip with a 'data' entry); nothing to "
            "export."
        )
    model = _load_pickled(source, None, "cpu")
    return save_model(model, out_dir, include_optimizer=include_optimizer)
