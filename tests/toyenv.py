"""A tiny user-defined text environment used by the training and CLI tests.

Importable as ``toyenv`` (tests/ is on sys.path), so subprocesses can use the Gymnasium id
``toyenv:ToyKeyword-v0`` with ``PYTHONPATH=tests``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs._text import text_space

TOPICS = (
    ("card", ("my card is lost", "card stolen yesterday", "where is my new card")),
    ("money", ("refund my money", "money missing from account", "send money abroad")),
    ("login", ("cannot log in", "password reset please", "login code never arrives")),
)


class RandomAgent:
    def __init__(self, env: gym.Env) -> None:
        self.rng = np.random.default_rng(0)
        self.n = env.action_space.n

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: Any) -> int:
        return int(self.rng.integers(self.n))


class OracleAgent:
    def __init__(self, env: gym.Env) -> None:
        self.env = env

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: Any) -> int:
        return int(self.env.unwrapped.topic)


class KeywordEnv(gym.Env):
    """Name the topic of a short message; 3 messages per episode, +1 right, -1 wrong."""

    metadata: ClassVar[dict] = {"render_modes": []}
    BASELINES: ClassVar[dict] = {"random": RandomAgent, "oracle": OracleAgent}
    METRICS: ClassVar[tuple[str, ...]] = ("success_rate",)
    MAIN_METRIC: ClassVar[str] = "success_rate"

    def __init__(self, episode_length: int = 3, delay: float = 0.0) -> None:
        self.episode_length = episode_length
        self.delay = delay
        self.observation_space = spaces.Dict(
            {
                "text": spaces.Tuple([text_space(40), text_space(40)]),
                "progress": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
            }
        )
        self.action_space = spaces.Discrete(len(TOPICS))
        self.topic = 0
        self.t = 0
        self.correct = 0
        self.last = ""

    def _obs(self) -> dict[str, Any]:
        self.topic = int(self.np_random.integers(len(TOPICS)))
        phrases = TOPICS[self.topic][1]
        message = phrases[int(self.np_random.integers(len(phrases)))]
        obs = {
            "text": (message, self.last),
            "progress": np.array([self.t / self.episode_length], dtype=np.float32),
        }
        self.last = message
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t, self.correct, self.last = 0, 0, ""
        return self._obs(), {}

    def step(self, action: int):
        if self.delay:
            time.sleep(self.delay)
        right = int(action) == self.topic
        self.correct += right
        self.t += 1
        done = self.t >= self.episode_length
        info = {"episode_metrics": {"success_rate": float(self.correct == self.t)}}
        return self._obs(), 1.0 if right else -1.0, done, False, info


if "ToyKeyword-v0" not in gym.registry:
    gym.register(id="ToyKeyword-v0", entry_point=KeywordEnv, max_episode_steps=10)
