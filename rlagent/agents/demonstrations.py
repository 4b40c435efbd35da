"""Expert demonstrations: what an env's expert does, as model inputs, actions and returns.

A warm start (:mod:`rlagent.agents.warm_starting`) teaches a policy what an expert would do
before PPO. The expert is one of the env's baselines (``BASELINES``, e.g. the customer-service
oracle, which reads the hidden intent and mood) or any object with ``reset(seed)`` and
``act(observation)``: it acts on the raw observations of the training env, and every state it
meets is recorded as the model reads it, through the model's observation pipeline
(:func:`rlagent.pipeline.wrap_observations`, so hidden entries such as ``"privileged"`` and the
``"action_mask"`` are the env's own), with the discounted return the expert obtained from it
under the rewards PPO learns from (:func:`rlagent.pipeline.wrap_for_training`: reward scale,
shaping, expected rewards).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlagent.pipeline import (
    ACTION_MASK_KEY,
    ObservationPipeline,
    wrap_for_training,
    wrap_observations,
)

__all__ = [
    "Demonstrations",
    "ExpertError",
    "WarmStartError",
    "collect_demonstrations",
    "make_expert",
]

#: What a warm start accepts as an expert: a baseline name of the env, or a function of the
#: raw env returning an object with ``reset(seed)`` and ``act(observation)`` (as a baseline
#: class is).
Expert = str | Callable[[gym.Env], Any]


class WarmStartError(ValueError):
    """A warm start that cannot run as asked (no expert, no demonstrations, a bad setting)."""


class ExpertError(WarmStartError):
    """The env has no expert of that name, or the expert acted outside the action space."""


@dataclass(frozen=True)
class Demonstrations:
    """States an expert met, as model inputs, with its actions and the returns it obtained.

    Attributes:
        observations: Entry name -> ``[N, ...]`` array of the model's inputs (token ids,
            attention masks, numeric entries), one row per decision of the expert.
        actions: ``[N]`` (``Discrete``) or ``[N, k]`` array of the expert's actions.
        returns: ``[N]`` float32 discounted return-to-go from each state under the training
            rewards (scaled and shaped as PPO sees them); a truncated episode is not
            bootstrapped.
        allowed: ``[N]`` bool: the expert's action was allowed by the observation's action
            mask (all True without a mask). Behaviour cloning skips the others.
        episodes: Episodes played.
        rewards: ``[N]`` float32 reward of each decision in the same units as ``returns``, or
            ``None`` where unknown (then only Monte-Carlo returns can be used).
        next_index: ``[N]`` the row of the episode's next decision, ``-1`` after its last
            one; ``None`` where unknown.
        gamma: The discount of ``returns`` (``None``: unknown).
        propensities: ``[N]`` the logger's probability of each logged action (``None``:
            unknown).
    """

    observations: dict[str, np.ndarray]
    actions: np.ndarray
    returns: np.ndarray
    allowed: np.ndarray
    episodes: int
    rewards: np.ndarray | None = None
    next_index: np.ndarray | None = None
    gamma: float | None = None
    propensities: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def batch(
        self, index: np.ndarray, device: torch.device | str = "cpu"
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The rows ``index`` as tensors on ``device``: ``(observations, actions, returns)``."""
        observations = {
            key: torch.as_tensor(value[index], device=device)
            for key, value in self.observations.items()
        }
        actions = torch.as_tensor(self.actions[index], device=device)
        returns = torch.as_tensor(self.returns[index], device=device)
        return observations, actions, returns

    def minibatches(
        self, batch_size: int, rng: np.random.Generator | None = None, *, allowed_only: bool = False
    ) -> Iterator[np.ndarray]:
        """Index arrays covering the rows once, shuffled by ``rng`` (in order without one)."""
        rows = np.flatnonzero(self.allowed) if allowed_only else np.arange(len(self))
        if rng is not None:
            rows = rng.permutation(rows)
        for start in range(0, len(rows), int(batch_size)):
            yield rows[start : start + int(batch_size)]


class _LastObservation(gym.Wrapper):
    """Keeps the raw observation the env returned last, for an expert that reads raw text."""

    observation: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.observation, info = self.env.reset(**kwargs)
        return self.observation, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.observation, reward, terminated, truncated, info = self.env.step(action)
        return self.observation, reward, terminated, truncated, info


def _label(env: gym.Env) -> str:
    spec = getattr(env, "spec", None) or getattr(env.unwrapped, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def default_expert(env: gym.Env) -> str:
    """The env's own choice of expert (its ``EXPERT`` class attribute), else ``"oracle"``."""
    return str(getattr(env.unwrapped, "EXPERT", None) or "oracle")


def make_expert(env: gym.Env, expert: Expert | None) -> Any:
    """The expert agent for ``env``: a baseline of the env by name, or built by ``expert(env)``.

    Args:
        env: The raw env the expert acts in.
        expert: A name in the env's ``BASELINES`` (e.g. ``"oracle"``), a function of the
            env returning an object with ``reset(seed)`` and ``act(observation)``, or ``None``
            for :func:`default_expert`.

    Returns:
        The agent.

    Raises:
        ExpertError: The env declares no baseline of that name, or the agent lacks ``act``.
    """
    if expert is None:
        expert = default_expert(env)
    if isinstance(expert, str):
        baselines = dict(getattr(env.unwrapped, "BASELINES", None) or {})
        if expert not in baselines:
            if baselines:
                found = f"its baselines are {', '.join(sorted(baselines))}"
            else:
                found = "it declares no BASELINES"
            raise ExpertError(
                f"{_label(env)} has no expert named {expert!r} ({found}). Set warm_start.expert "
                "to one of its baselines (one that reads the hidden state teaches best), give "
                "the env a BASELINES entry {name: class} whose class(env) has reset(seed) and "
                "act(observation), or pass expert=a function of the env to "
                "rlagent.agents.warm_start."
            )
        factory = baselines[expert]
    elif callable(expert):
        factory = expert
    else:
        raise ExpertError(
            f"expert = {expert!r}; expected a baseline name of the env (e.g. 'oracle') or a "
            "function of the env returning an agent with reset(seed) and act(observation)."
        )
    agent = factory(env)
    if not callable(getattr(agent, "act", None)):
        raise ExpertError(
            f"The expert {expert!r} built {type(agent).__name__}, which has no act(observation) "
            "method; an expert is an object with reset(seed) and act(observation) -> action."
        )
    return agent


def collect_demonstrations(
    env: gym.Env,
    pipeline: ObservationPipeline,
    expert: Expert,
    *,
    episodes: int,
    seed: int = 0,
    gamma: float = 0.99,
    reward_scale: float = 1.0,
    reward_shaping: bool = False,
    expected_rewards: bool = False,
) -> Demonstrations:
    """Play ``episodes`` episodes with the expert and record what the model would read.

    Episode ``i`` resets the env and the expert with ``seed + i``, so the same arguments give
    the same demonstrations (a resumed run rebuilds them instead of saving them).

    Args:
        env: A raw env (its observations are text); it is wrapped here, and left open.
        pipeline: The model's observation pipeline.
        expert: A baseline name of the env or a function of the env returning an agent (see
            :func:`make_expert`).
        episodes: Episodes to play (>= 1).
        seed: Seed of the first episode.
        gamma: Discount of the returns.
        reward_scale: As the model's training env applies it.
        reward_shaping: As the model's training env applies it.
        expected_rewards: As the model's training env applies it.

    Returns:
        The :class:`Demonstrations`.

    Raises:
        ExpertError: No such expert, or it chose an action outside the action space.
    """
    recorder = _LastObservation(env)
    agent = make_expert(env, expert)
    wrapped = wrap_for_training(
        wrap_observations(recorder, pipeline),
        reward_scale=reward_scale,
        reward_shaping=reward_shaping,
        expected_rewards=expected_rewards,
    )
    rows: dict[str, list[np.ndarray]] = {}
    actions: list[np.ndarray] = []
    returns: list[float] = []
    space = env.action_space
    for episode in range(int(episodes)):
        observation, _ = wrapped.reset(seed=int(seed) + episode)
        reset = getattr(agent, "reset", None)
        if callable(reset):
            reset(int(seed) + episode)
        rewards: list[float] = []
        done = False
        while not done:
            chosen = agent.act(recorder.observation)
            action = np.asarray(chosen)
            if not space.contains(action):
                raise ExpertError(
                    f"The expert {expert!r} chose {action.tolist()!r}, outside "
                    f"{_label(env)}'s action space {space}."
                )
            for key, value in observation.items():
                rows.setdefault(key, []).append(np.asarray(value))
            actions.append(action)
            observation, reward, terminated, truncated, _ = wrapped.step(chosen)
            rewards.append(float(reward))
            done = terminated or truncated
        returns += _returns_to_go(rewards, gamma)
    observations = {key: np.stack(values) for key, values in rows.items()}
    stacked = np.stack(actions) if actions else np.zeros((0, *space.shape), np.int64)
    allowed = np.ones(len(stacked), dtype=bool)
    if ACTION_MASK_KEY in observations and stacked.ndim == 1:
        masks = observations[ACTION_MASK_KEY].reshape(len(stacked), -1)
        allowed = masks[np.arange(len(stacked)), stacked.astype(np.int64)] > 0.5
    return Demonstrations(
        observations=observations,
        actions=stacked,
        returns=np.asarray(returns, dtype=np.float32),
        allowed=allowed,
        episodes=int(episodes),
    )


def _returns_to_go(rewards: list[float], gamma: float) -> list[float]:
    out, total = [], 0.0
    for reward in reversed(rewards):
        total = reward + gamma * total
        out.append(total)
    return out[::-1]


def build_env(
    env: str | gym.Env | Callable[..., gym.Env], env_kwargs: Mapping[str, Any] | None = None
) -> gym.Env:
    """The raw env a warm start plays in: built from an id or factory, or ``env`` itself.

    Raises:
        WarmStartError: ``env_kwargs`` given with an env instance.
    """
    if isinstance(env, str):
        from rlagent.env_making import make_env

        return make_env(env, dict(env_kwargs or {}))
    if isinstance(env, gym.Env):
        if env_kwargs:
            raise WarmStartError(
                f"env_kwargs {dict(env_kwargs)} given with an env instance; pass them when you "
                "build the env, or pass a registered env id instead."
            )
        return env
    if callable(env):
        return env(**dict(env_kwargs or {}))
    raise WarmStartError(
        "The warm start's env must be a registered env id, a gymnasium.Env or a function "
        f"returning one, got {type(env).__name__}."
    )
