"""Collect a dataset of simulator episodes with the behaviour policy's action probabilities.

:func:`collect` plays a model or a baseline of an env for ``episodes`` episodes and writes them,
with the rlagent dataset writer (:mod:`rlagent.datasets.writing`), in the layout the interaction
log exports to, so that :func:`rlagent.datasets.read_episodes`, ``rlagent ope`` and
``minari.MinariDataset(DIR / "data")`` read both alike. What the behaviour policy is, for each
kind of policy and setting, is in :mod:`rlagent.datasets.behaviour`.

Per episode of ``T`` decisions:

* ``observations`` (``T + 1``): the env's raw observations, the last one the env's final
  observation (``final_observation: "env"`` in the metadata).
* ``actions``, ``rewards``, ``terminations``, ``truncations`` (``T``): as the env returned them.
* ``infos`` (``T + 1`` entries, entry ``t`` belonging to observation ``t``):
  ``action_probabilities`` ``[T + 1, A]`` the behaviour's full distribution (last row NaN),
  ``propensity`` the probability of the action taken (last NaN) and, for an env with
  ``action_masks()``, ``action_mask`` ``[T + 1, A]`` (bool; what a masked target model reads
  in ``rlagent ope``).
* episode metadata: Minari's ``seed`` (the env's reset seed), ``return``, ``length`` and the
  env's final ``info["episode_metrics"]`` (e.g. ``success_rate``) as ``episode_metrics``.

The dataset metadata's ``rlagent`` entry holds the env, the policy's identity (a model's path
and :func:`rlagent.agents.saving.model_hash`, or the baseline's name), the behaviour settings,
the seed and a summary (decisions, mean return, mean metrics, wall time).

Seeding: episode ``i`` resets the env (and a baseline's own generator) with ``seed + i`` and
samples its actions with generator ``i`` spawned from ``np.random.default_rng(seed)``, so an
episode does not depend on which other episodes share its forward passes: the same call gives
the same dataset.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlagent.datasets.behaviour import (
    BaselineBehaviour,
    CollectError,
    ModelBehaviour,
    action_mask,
    has_action_masks,
)
from rlagent.datasets.writing import DatasetWriter, default_dataset_id, episode_buffer

__all__ = ["CollectError", "DeterministicBehaviourWarning", "collect", "collect_summary"]

#: Envs played in lockstep (one forward pass for all) when the policy is a model.
DEFAULT_BATCH = 64
_WRITER = DatasetWriter(command="rlagent collect", flag="--out", noun="dataset", error=CollectError)
#: How far a behaviour distribution may sum from 1 before it is refused.
_SUM_TOLERANCE = 1e-6


class DeterministicBehaviourWarning(UserWarning):
    """The behaviour policy is deterministic: propensities are 1, other actions unsupported."""


@dataclass
class _Episode:
    """One episode being recorded."""

    index: int
    rng: np.random.Generator
    observations: list[Any]
    masks: list[np.ndarray | None]
    actions: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    propensities: list[float] = field(default_factory=list)


def _check_settings(
    episodes: Any, epsilon: Any, temperature: Any, batch_size: Any, seed: Any
) -> None:
    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise CollectError(f"episodes={episodes!r}; expected an int >= 1 (--episodes N).")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise CollectError(f"seed={seed!r}; expected an int >= 0 (--seed S).")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise CollectError(f"batch_size={batch_size!r}; expected an int >= 1.")
    if epsilon is not None and temperature is not None:
        raise CollectError(
            f"Got both epsilon={epsilon} and temperature={temperature}; pass one: epsilon for "
            "epsilon-greedy exploration around the policy's action, temperature to sample a "
            "model's own distribution at that temperature."
        )
    if epsilon is not None and (not number(epsilon) or not 0.0 <= epsilon <= 1.0):
        raise CollectError(
            f"epsilon={epsilon!r} is outside [0, 1]; it is the probability of acting uniformly "
            "at random instead of the policy's action (e.g. --epsilon 0.1)."
        )
    if temperature is not None and (
        not number(temperature) or not math.isfinite(temperature) or temperature <= 0
    ):
        raise CollectError(
            f"temperature={temperature!r}; expected a finite number > 0 (1: the model's own "
            "distribution; higher: closer to uniform)."
        )


def _env_label(env_id: str | None, env: gym.Env) -> str:
    return env_id or (env.spec.id if env.spec else type(env.unwrapped).__name__)


def _looks_like_path(name: str) -> bool:
    path = Path(name)
    return "/" in name or os.sep in name or path.suffix == ".zip" or path.exists()


def _make_behaviour(
    policy: str | os.PathLike,
    env_id: str | None,
    env_kwargs: Mapping[str, Any] | None,
    *,
    epsilon: float | None,
    temperature: float | None,
    device: str,
) -> tuple[Any, str, dict[str, Any], Callable[[int], list[gym.Env]], bool]:
    """The behaviour (a function of the envs), env id and kwargs, env maker, and lockstep."""
    from rlagent.env_making import make_env

    name = os.fspath(policy)
    env = make_env(env_id, env_kwargs) if env_id is not None else None
    baselines = sorted(getattr(env.unwrapped, "BASELINES", {}) or {}) if env is not None else []
    if env is not None and name in baselines:
        if temperature is not None:
            raise CollectError(
                f"temperature={temperature} applies to a model's action distribution; the "
                f"baseline {name!r} has none: pass epsilon (--epsilon e) to explore around it."
            )
        kwargs = dict(env_kwargs or {})
        return (
            lambda envs: BaselineBehaviour(name, envs, epsilon=epsilon),
            str(env_id),
            kwargs,
            lambda k: [env] + [make_env(env_id, kwargs) for _ in range(k - 1)],
            False,
        )
    if not _looks_like_path(name):
        if env is None:
            raise CollectError(
                f"Policy {name!r} is not a model folder (there is no such file or directory), "
                "and a baseline needs its env: pass env_id= (--env ID) with one of the env's "
                "baseline names, or the path of a model folder."
            )
        known = ", ".join(baselines) or "none"
        raise CollectError(
            f"Policy {name!r} is neither a model folder nor a baseline of "
            f"{_env_label(env_id, env)} (baselines: {known}); pass the path of a model folder "
            "(rlagent train writes DIR/model) or one of the baseline names."
        )
    from rlagent.agents.loading import load_model
    from rlagent.agents.saving import model_hash, resolve_model_dir

    path = resolve_model_dir(Path(name))
    model = load_model(path, device=device)
    spec = getattr(model, "rlagent_spec", None) or {}
    saved_id = spec.get("env_id")
    if env_id is None:
        if not saved_id:
            raise CollectError(
                f"The model at {path} records no env id; pass env_id= (--env ID), the env to "
                "collect episodes in."
            )
        env_id = saved_id
    if env_kwargs is None:
        env_kwargs = dict(spec.get("env_kwargs") or {}) if env_id == saved_id else {}
    kwargs = dict(env_kwargs)
    if env is not None:
        env.close()  # built before the model's own kwargs were known
    first = make_env(env_id, kwargs)
    behaviour = ModelBehaviour(
        model,
        first,
        temperature=temperature,
        epsilon=epsilon,
        model_path=str(path.resolve()),
        model_hash=model_hash(path),
    )
    return (
        lambda envs: behaviour,
        str(env_id),
        kwargs,
        lambda k: [first] + [make_env(env_id, kwargs) for _ in range(k - 1)],
        True,
    )


def _snapshot(observation: Any) -> Any:
    """``observation`` with its arrays copied (an env may reuse its buffers between steps)."""
    if isinstance(observation, dict):
        return {key: _snapshot(value) for key, value in observation.items()}
    if isinstance(observation, tuple):
        return tuple(_snapshot(value) for value in observation)
    if isinstance(observation, np.ndarray):
        return observation.copy()
    return observation


def _sample(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn from ``probabilities`` (never one of probability 0)."""
    cumulative = np.cumsum(probabilities)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(probabilities) - 1)


def _env_action(index: int, action_space: gym.Space) -> Any:
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        nvec = tuple(int(n) for n in action_space.nvec)
        return np.asarray(np.unravel_index(index, nvec), dtype=action_space.dtype)
    return int(index) + int(getattr(action_space, "start", 0))


def _checked(row: np.ndarray, episode: int, step: int) -> np.ndarray:
    total = float(row.sum())
    if not np.isfinite(row).all() or (row < 0).any() or abs(total - 1.0) > _SUM_TOLERANCE:
        raise CollectError(
            f"Episode {episode} step {step}: the behaviour's probabilities are not a "
            f"distribution (sum {total:.6g}, min {float(np.nanmin(row)):.3g}); a baseline's "
            "action_probabilities() must return non-negative numbers summing to 1."
        )
    return row / total


def collect(
    policy: str | os.PathLike,
    env_id: str | None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    episodes: int,
    out_dir: str | os.PathLike,
    seed: int = 0,
    epsilon: float | None = None,
    temperature: float | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    dataset_id: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Play ``policy`` for ``episodes`` episodes and write them as a dataset in ``out_dir``.

    The behaviour policy (see :mod:`rlagent.datasets.behaviour`): a model samples its own
    distribution (``temperature`` divides its logits), or with ``epsilon`` acts epsilon-greedy
    around its mode; a baseline acts as it does (propensity 1, with a
    :class:`DeterministicBehaviourWarning`), or with ``epsilon`` epsilon-soft. The layout is in
    the module docstring; :func:`rlagent.datasets.read_episodes` reads it.

    Args:
        policy: A model folder (the safe format) or the name of a baseline of the env
            (``env.unwrapped.BASELINES``; a baseline wins over a file of the same name).
        env_id: The env to play; ``None``: the model's own (a baseline needs it).
        env_kwargs: Its keyword arguments; ``None``: the model's saved ones when ``env_id`` is
            its own, else none.
        episodes: Episodes to play; episode ``i`` resets the env with ``seed + i``.
        out_dir: The dataset folder: new, empty, or an earlier rlagent dataset with
            ``overwrite``.
        seed: Base seed of the env resets and of the sampling.
        epsilon: In ``[0, 1]``: the share of uniformly random actions (over the allowed ones).
        temperature: ``> 0``: a model's sampling temperature (models only).
        overwrite: Replace an earlier rlagent dataset in ``out_dir``.
        device: Torch device of a model.
        dataset_id: Minari's id (default ``rlagent-collect/<folder name>-v0``).
        batch_size: Envs played in lockstep, one forward pass for all (models only).
        progress: Called with 1 after each finished episode.

    Returns:
        ``out_dir``.

    Raises:
        CollectError: A setting out of range, both ``epsilon`` and ``temperature``, an unknown
            baseline (the message lists the env's), a temperature for a baseline, or an output
            folder that is not empty (without ``overwrite``) or not an rlagent dataset.
        rlagent.agents.ModelFileError: ``policy`` names a path that is not a model folder.
        rlagent.agents.ModelEnvMismatchError: The model does not read the env.
        ImportError: minari or pyarrow is not installed.
    """
    _check_settings(episodes, epsilon, temperature, batch_size, seed)
    out = Path(out_dir)
    dataset_id = dataset_id or default_dataset_id(out, "rlagent-collect", "episodes")
    _WRITER.check_dataset_id(dataset_id)
    _WRITER.check_out_dir(out, overwrite)
    started = time.perf_counter()
    build, env_id, env_kwargs, make_envs, lockstep = _make_behaviour(
        policy, env_id, env_kwargs, epsilon=epsilon, temperature=temperature, device=device
    )
    envs = make_envs(min(episodes, batch_size) if lockstep else 1)
    behaviour = build(envs)
    if behaviour.deterministic:
        identity = behaviour.identity()
        label = repr(identity.get("name")) if identity["kind"] == "baseline" else "The model"
        how = "without epsilon" if epsilon is None else "with epsilon 0"
        warnings.warn(
            f"{label} {how} is deterministic: every decision is recorded with propensity 1, so "
            "off-policy evaluation has no support for any other action (it can evaluate only "
            "policies that act exactly like it); pass epsilon (--epsilon 0.1) to explore.",
            DeterministicBehaviourWarning,
            stacklevel=2,
        )
    try:
        buffers, metas = _play(behaviour, envs, episodes, seed, progress)
        spec, spaces_ = envs[0].spec, (envs[0].observation_space, envs[0].action_space)
        masked = has_action_masks(envs[0])
    finally:
        for env in envs:
            env.close()
    elapsed = time.perf_counter() - started
    returns = np.array([m["return"] for m in metas])
    metric_keys = sorted({k for m in metas for k in m["episode_metrics"]})
    summary = {
        "episodes": episodes,
        "decisions": int(sum(m["length"] for m in metas)),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std(ddof=1)) if episodes > 1 else 0.0,
        "metrics": {
            k: float(np.mean([m["episode_metrics"].get(k, np.nan) for m in metas]))
            for k in metric_keys
        },
        "wall_time_s": elapsed,
        "episodes_per_s": episodes / elapsed if elapsed > 0 else math.inf,
    }
    identity = behaviour.identity()
    label = identity.get("name") or identity.get("path")
    return _WRITER.write(
        out,
        buffers,
        env_spec=spec,
        observation_space=spaces_[0],
        action_space=spaces_[1],
        dataset_id=dataset_id,
        rlagent_metadata={
            "source": "collect",
            "env_id": env_id,
            "env_kwargs": env_kwargs,
            "policy": identity,
            "behaviour": _behaviour_rule(identity, epsilon, temperature, behaviour),
            "uniform_over": "allowed actions (env.action_masks())"
            if masked
            else "every action of the action space",
            "seed": seed,
            "sampling": "episode i: env seed seed + i, actions drawn with generator i of "
            "np.random.default_rng(seed).spawn(episodes)",
            "final_observation": "env",
            "summary": summary,
        },
        algorithm_name=f"rlagent collect ({label})",
        description=f"{episodes} episodes of {label} on {env_id}, with the behaviour policy's "
        "action probabilities.",
        episode_metadata=metas,
        overwrite=overwrite,
    )


def _behaviour_rule(
    identity: Mapping[str, Any], epsilon: float | None, temperature: float | None, behaviour: Any
) -> str:
    if identity["kind"] == "model":
        if epsilon is not None:
            return f"epsilon-greedy around the model's mode, epsilon={epsilon:g}"
        return f"the model's distribution at temperature {temperature or 1.0:g}, sampled"
    if epsilon:
        return f"epsilon-soft baseline, epsilon={epsilon:g}"
    if behaviour.stochastic:
        return "the baseline's own distribution, sampled"
    return "deterministic baseline (propensity 1)"


def _play(
    behaviour: Any,
    envs: list[gym.Env],
    episodes: int,
    seed: int,
    progress: Callable[[int], None] | None,
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Play every episode, ``len(envs)`` at a time in lockstep; buffers and metadata in order."""
    rngs = np.random.default_rng(seed).spawn(episodes)
    action_space = envs[0].action_space
    observation_space = envs[0].observation_space
    has_masks = has_action_masks(envs[0])
    buffers: list[Any] = [None] * episodes
    metas: list[dict[str, Any]] = [{}] * episodes
    running: list[_Episode | None] = [None] * len(envs)
    upcoming = iter(range(episodes))

    def start(slot: int) -> None:
        index = next(upcoming, None)
        if index is None:
            running[slot] = None
            return
        env = envs[slot]
        observation, _ = env.reset(seed=seed + index)
        behaviour.reset(slot, seed + index)
        running[slot] = _Episode(index, rngs[index], [_snapshot(observation)], [action_mask(env)])

    for slot in range(len(envs)):
        start(slot)
    while any(e is not None for e in running):
        slots = [s for s, e in enumerate(running) if e is not None]
        current = [running[s] for s in slots]
        dists = behaviour.distributions(
            slots, [e.observations[-1] for e in current], [e.masks[-1] for e in current]
        )
        for row, slot in enumerate(slots):
            episode = current[row]
            probabilities = _checked(dists[row], episode.index, len(episode.actions))
            index = _sample(probabilities, episode.rng)
            action = _env_action(index, action_space)
            observation, reward, terminated, truncated, info = envs[slot].step(action)
            episode.actions.append(action)
            episode.rewards.append(float(reward))
            episode.probabilities.append(probabilities)
            episode.propensities.append(float(probabilities[index]))
            episode.observations.append(_snapshot(observation))
            episode.masks.append(action_mask(envs[slot]))
            if terminated or truncated:
                buffers[episode.index], metas[episode.index] = _finish(
                    episode,
                    observation_space,
                    bool(terminated),
                    bool(truncated),
                    info,
                    seed,
                    has_masks,
                )
                if progress is not None:
                    progress(1)
                start(slot)
    return buffers, metas


def _finish(
    episode: _Episode,
    observation_space: gym.Space,
    terminated: bool,
    truncated: bool,
    info: Mapping[str, Any],
    seed: int,
    has_masks: bool,
) -> tuple[Any, dict[str, Any]]:
    steps = len(episode.actions)
    width = len(episode.probabilities[0])
    probabilities = np.full((steps + 1, width), np.nan)
    probabilities[:steps] = np.stack(episode.probabilities)
    infos: dict[str, Any] = {
        "action_probabilities": probabilities,
        "propensity": np.array([*episode.propensities, math.nan]),
    }
    if has_masks:
        infos["action_mask"] = np.stack(
            [np.ones(width, dtype=bool) if m is None else m for m in episode.masks]
        )
    buffer = episode_buffer(
        episode.index,
        observation_space,
        episode.observations,
        episode.actions,
        episode.rewards,
        terminated,
        truncated,
        infos,
        seed=seed + episode.index,
    )
    metrics = {k: float(v) for k, v in (info.get("episode_metrics") or {}).items()}
    meta = {
        "return": float(np.sum(episode.rewards)),
        "length": steps,
        "episode_metrics": metrics,
    }
    return buffer, meta


def collect_summary(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """What :func:`collect` recorded of a dataset: policy, env, behaviour and summary figures.

    Args:
        dataset_dir: A folder :func:`collect` wrote.

    Returns:
        The ``rlagent`` metadata entry plus ``out`` and ``dataset_id``.

    Raises:
        rlagent.datasets.DatasetError: Not a Minari dataset.
    """
    import json

    from rlagent.datasets.episodes import _data_path

    metadata = json.loads((_data_path(Path(dataset_dir)) / "metadata.json").read_text("utf-8"))
    return {
        "out": str(dataset_dir),
        "dataset_id": metadata.get("dataset_id"),
        **(metadata.get("rlagent") or {}),
    }
