"""PPO text agents saved as JSON and safetensors, so that loading them runs no code from the file.

A saved model is a directory::

    MODEL/
      manifest.json          format and rlagent version, spaces, policy and PPO settings, the
                             agent's spec (how its observations are built), encoder and checksums
      model.safetensors      the policy's state_dict
      optimizer.safetensors  only with include_optimizer=True: the optimizer's tensors (its
                             settings are in manifest.json), so that training resumes exactly

:func:`save_model` writes it; :func:`rlagent.agents.loading.load_model` reads it back without
unpickling anything, and :func:`rlagent.agents.loading.load` is the front door that also accepts
a pickled SB3 ``.zip``, but only with ``trust=True``. A frozen encoder's weights are not in the
files: the manifest names the encoder and records its checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO

from rlagent import _tensor_json
from rlagent.agents import manifest as mf
from rlagent.agents.factory import spec_of
from rlagent.agents.spaces_json import space_to_json
from rlagent.encoders.extractor import TextFeaturesExtractor

__all__ = [
    "MANIFEST",
    "OPTIMIZER_FILE",
    "WEIGHTS_FILE",
    "ModelFileError",
    "file_sha256",
    "is_model_dir",
    "model_hash",
    "read_manifest",
    "resolve_model_dir",
    "save_model",
]

MANIFEST = "manifest.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
#: Files or folders that mark a run directory (``rlagent train --out``) or a checkpoint.
_RUN_MARKERS = ("config.yaml", "metrics.json", "checkpoints", "state.pkl", "run_state.json")
_EPISODE_KEYS = ("r", "l", "t")


class ModelFileError(ValueError):
    """A path is not a loadable safe model: missing, malformed, corrupt or of another format."""


# ----------------------------------------------------------------------------- saving
def save_model(model: PPO, path: str | os.PathLike, *, include_optimizer: bool = False) -> Path:
    """Save a text PPO agent as a model directory (JSON and safetensors, no pickle).

    The directory is written under a temporary name and renamed into place, so a reader never
    sees half a model. An existing model directory at ``path`` is replaced; anything else
    there is left alone and refused.

    Args:
        model: A ``PPO`` with a :class:`rlagent.agents.TextActorCriticPolicy` (from
            :func:`rlagent.agents.make_ppo`, :func:`load_model` or a trusted SB3 load).
        path: The model directory to write.
        include_optimizer: Also save the optimizer's state and the episode statistics, so that
            training continues exactly as it would have (for checkpoints).

    Returns:
        The model directory.

    Raises:
        UnsupportedModelError: A custom policy, extractor, optimizer or schedule, or a value
            JSON cannot hold.
        ModelFileError: ``path`` exists and is not a saved model.
    """
    path = Path(path)
    manifest, tensors, optimizer_tensors = _describe(model, include_optimizer=include_optimizer)
    _check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = {WEIGHTS_FILE: _write_tensors(tmp / WEIGHTS_FILE, tensors)}
        files[WEIGHTS_FILE]["aliases"] = manifest.pop("_aliases")
        if optimizer_tensors is not None:
            files[OPTIMIZER_FILE] = _write_tensors(tmp / OPTIMIZER_FILE, optimizer_tensors)
        manifest["files"] = files
        (tmp / MANIFEST).write_text(mf.dumps(manifest), encoding="utf-8")
        _replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _describe(
    model: PPO, *, include_optimizer: bool
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    from rlagent import __version__

    if not isinstance(model, PPO):
        raise mf.UnsupportedModelError(
            f"save_model saves PPO agents, got {type(model).__name__}; use its own save method."
        )
    policy = model.policy
    policy_name = mf.name_of_class(type(policy), where="the policy class")
    spec = getattr(model, "rlagent_spec", None)
    if spec is None and isinstance(
        getattr(policy, "features_extractor", None), TextFeaturesExtractor
    ):
        spec = spec_of(model)
    tensors, aliases = _unshared(policy.state_dict())
    manifest: dict[str, Any] = {
        "format": mf.FORMAT_NAME,
        "format_version": mf.FORMAT_VERSION,
        "rlagent_version": __version__,
        "algorithm": "PPO",
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "policy": {"class": policy_name, "kwargs": mf.policy_kwargs_to_json(policy)},
        "ppo": mf.ppo_kwargs_to_json(model),
        "seed": mf.json_value(model.seed, where="PPO seed"),
        "n_envs": int(model.n_envs),
        "training": {
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(model._n_updates),
            "episode_num": int(model._episode_num),
            "current_progress_remaining": float(model._current_progress_remaining),
        },
        "rlagent_spec": mf.json_value(spec, where="model.rlagent_spec"),
        "encoder": _encoder_entry(policy),
        "_aliases": aliases,
    }
    optimizer_tensors = None
    if include_optimizer:
        optimizer_tensors = {}
        manifest["optimizer"] = {
            "class": mf.name_of_class(type(policy.optimizer), where="the optimizer class"),
            "state": _tensor_json.encode(
                policy.optimizer.state_dict(), optimizer_tensors, where="optimizer state"
            ),
        }
        manifest["training"]["episode_info"] = _episodes(model.ep_info_buffer)
        manifest["training"]["episode_success"] = _episodes(model.ep_success_buffer)
    return manifest, tensors, optimizer_tensors


def _encoder_entry(policy: torch.nn.Module) -> dict[str, Any] | None:
    extractor = getattr(policy, "features_extractor", None)
    if not isinstance(extractor, TextFeaturesExtractor):
        return None
    return {
        "name": extractor.encoder_name,
        "checksum": extractor.encoder_checksum,
        "mode": extractor.mode,
        "weights_in_file": extractor.mode != "frozen",
    }


def _episodes(buffer: Any) -> list[Any] | None:
    if buffer is None:
        return None
    out = []
    for item in buffer:
        if isinstance(item, Mapping):
            item = {k: item[k] for k in _EPISODE_KEYS if k in item}
        out.append(mf.json_value(item, where="episode statistics"))
    return out


def _unshared(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors safetensors can write (CPU, contiguous, no shared memory) and alias names.

    A module reachable under several names (SB3's shared ``features_extractor``,
    ``pi_features_extractor`` and ``vf_features_extractor``) appears once per name in a
    state_dict: it is written once and the other names are recorded as aliases.
    """
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    storages: set[tuple[Any, int]] = set()
    for name, tensor in state.items():
        tensor = tensor.detach()
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        ident = (
            *storage,
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )
        if ident in seen and tensor.numel():
            aliases[name] = seen[ident]
            continue
        seen[ident] = name
        whole = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
        cpu = tensor.to("cpu")
        if storage in storages or not whole or not cpu.is_contiguous():
            cpu = cpu.contiguous().clone()
        storages.add(storage)
        tensors[name] = cpu
    return tensors, aliases


def _write_tensors(file: Path, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    from safetensors.torch import save_file

    save_file(dict(tensors), os.fspath(file), metadata={"format": mf.FORMAT_NAME})
    return {"sha256": file_sha256(file)}


def file_sha256(file: Path) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_hash(path: str | os.PathLike) -> str:
    """The sha256 of a model directory's files (names and contents): stable across copies."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        name = file.relative_to(root).as_posix()
        content = hashlib.sha256(file.read_bytes()).hexdigest()
        digest.update(f"{name}\0{content}\n".encode())
    return digest.hexdigest()


def _check_replaceable(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and (is_model_dir(path) or not any(path.iterdir())):
        return
    raise ModelFileError(
        f"{path} exists and is not a saved model; save_model replaces only a model directory. "
        "Choose another path, or remove it yourself if you no longer need it."
    )


def _replace(tmp: Path, path: Path) -> None:
    if not path.exists():
        tmp.rename(path)
        return
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- reading
def is_model_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding a model manifest written by :func:`save_model`."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        return False
    try:
        return json.loads(file.read_text(encoding="utf-8")).get("format") == mf.FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """``path`` as a model directory.

    Args:
        path: What a user gave as a model: a model directory, or a mistaken path.

    Returns:
        ``path``, a directory holding a manifest.

    Raises:
        ModelFileError: With a one-line explanation of what ``path`` is instead (missing, a run
            or checkpoint directory, a folder without manifest, a file), and a suggestion.
    """
    path = Path(path)
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return path
        if any((path / marker).exists() for marker in _RUN_MARKERS):
            suggestion = path / "model"
            if not is_model_dir(suggestion) and (path / "model.zip").is_file():
                suggestion = path / "model.zip"
            kind = "run directory" if (path / "config.yaml").exists() else "checkpoint directory"
            raise ModelFileError(f"{path} is a {kind}, not a model; did you mean {suggestion}?")
        raise ModelFileError(
            f"{path} has no {MANIFEST}, so it is not a model saved by rlagent "
            "(rlagent.agents.save_model or `rlagent export`)."
        )
    if path.exists():
        raise ModelFileError(
            f"{path} is a file, not a model directory; load a pickled SB3 .zip with "
            "rlagent.agents.load(path, trust=True) or convert it with export_model."
        )
    hint = ""
    if path.suffix == ".zip" and path.with_suffix("").is_dir():
        hint = f"; did you mean {path.with_suffix('')}?"
    elif path.suffix != ".zip" and path.with_name(path.name + ".zip").is_file():
        hint = f"; did you mean {path.with_name(path.name + '.zip')} (a pickled SB3 model)?"
    raise ModelFileError(f"No model at {path} (no such file or directory){hint}")


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """A saved model's manifest, checked for its format and version (no weights read).

    Args:
        path: The model directory.

    Returns:
        The manifest as a dict.

    Raises:
        ModelFileError: A missing path, a run directory, a missing or malformed manifest, or
            a format or version this rlagent does not read.
    """
    path = resolve_model_dir(path)
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelFileError(f"{file} is not UTF-8 text; the model directory is damaged.") from None
    except ValueError as exc:
        raise ModelFileError(f"{file} is not valid JSON ({exc}); save the model again.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != mf.FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ModelFileError(
            f"{file} describes format {found!r}, not {mf.FORMAT_NAME!r}; it was not written by "
            "rlagent.agents.save_model."
        )
    version = manifest.get("format_version")
    if version != mf.FORMAT_VERSION:
        from rlagent import __version__

        raise ModelFileError(
            f"{path} is in model format version {version!r}, but rlagent {__version__} reads "
            f"version {mf.FORMAT_VERSION} only; load it with the rlagent that wrote it "
            f"({manifest.get('rlagent_version', 'unknown')}) or upgrade rlagent."
        )
    return manifest
