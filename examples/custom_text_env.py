"""Your own text environment, start to finish: define it, check it, train PPO, evaluate.

The env: a user asks for help in one sentence; the agent routes the request to the right
team (billing, technical, shipping). Its words vary, so the agent must read.

    python examples/custom_text_env.py            # about a minute on a laptop CPU
    python examples/custom_text_env.py --quick    # seconds, tiny random encoder
"""

from __future__ import annotations

import argparse
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import rlagent
from rlagent.envs import text_space

TEAMS = ("billing", "technical", "shipping")
REQUESTS = {
    "billing": ["I was charged twice", "refund my last payment", "why is my invoice so high"],
    "technical": ["the app keeps crashing", "I cannot log in", "the screen stays blank"],
    "shipping": ["my parcel is late", "where is my order", "the box arrived damaged"],
}
OPENERS = ["hi,", "hello,", "please help:", "urgent:", ""]


class RandomRouter:
    """Baseline: route uniformly at random."""

    def __init__(self, env: gym.Env) -> None:
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: Any) -> int:
        return int(self.rng.integers(len(TEAMS)))


class RoutingEnv(gym.Env):
    """Route one-sentence requests to a team; +1 if right, -1 if wrong; 5 requests an episode."""

    metadata: ClassVar[dict] = {"render_modes": []}
    BASELINES: ClassVar[dict] = {"random": RandomRouter}
    METRICS: ClassVar[tuple[str, ...]] = ("accuracy",)
    MAIN_METRIC: ClassVar[str] = "accuracy"

    def __init__(self, requests_per_episode: int = 5) -> None:
        self.n = requests_per_episode
        self.observation_space = spaces.Dict({"request": text_space(80)})
        self.action_space = spaces.Discrete(len(TEAMS))
        self._team, self._t, self._right = 0, 0, 0

    def _next(self) -> dict[str, str]:
        self._team = int(self.np_random.integers(len(TEAMS)))
        phrases = REQUESTS[TEAMS[self._team]]
        opener = OPENERS[int(self.np_random.integers(len(OPENERS)))]
        phrase = phrases[int(self.np_random.integers(len(phrases)))]
        return {"request": f"{opener} {phrase}".strip()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t, self._right = 0, 0
        return self._next(), {}

    def step(self, action: int):
        right = int(action) == self._team
        self._t += 1
        self._right += right
        info = {"episode_metrics": {"accuracy": self._right / self._t}}
        return self._next(), 1.0 if right else -1.0, self._t >= self.n, False, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny budget and random encoder")
    args = parser.parse_args()
    encoder = "tiny-random" if args.quick else "default"
    steps = 512 if args.quick else 20_000

    gym.register("RoutingEnv-v0", entry_point=RoutingEnv, max_episode_steps=10)
    check_env(RoutingEnv())

    model = rlagent.make_ppo(
        "RoutingEnv-v0", encoder=encoder, n_envs=4, seed=0, n_steps=64, batch_size=64
    )
    model.learn(steps)
    for agent, name in ((model, "PPO"), ("random", "random")):
        result = rlagent.evaluate(agent, "RoutingEnv-v0", episodes=50, seed=1, name=name)
        accuracy = result.metrics["accuracy"]
        print(f"{name:>6}: return {result.mean_return:5.2f}  accuracy {accuracy:.2f}")


if __name__ == "__main__":
    main()
