"""Plan with MCTS: on a model written as a plain class, then on a bundled environment.

Run: ``python examples/mcts_planning.py`` (a few seconds; no trained model needed).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import rlagent  # noqa: F401  (registers the bundled environments)
from rlagent.planning import MCTS, MCTSConfig, make_planning_agent


class Gamble:
    """Three rounds: bank 1 point, or roll a die that pays 4 on a 5 or 6 (4/3 on average).

    Rolling is better on average, so the optimal value is ``3 * 4/3 = 4``. States are
    ``(round, points)`` tuples: hashable, as the planner needs.
    """

    def actions(self, state):
        """Both actions are always legal."""
        return (0, 1)  # 0 = bank, 1 = roll

    def step(self, state, action, rng):
        """Sample ``(next_state, reward, done)``, all randomness from ``rng``."""
        round_, points = state
        if action == 0:
            reward = 1.0
        else:
            reward = 4.0 if rng.random() < 2 / 6 else 0.0
        return (round_ + 1, points + reward), reward, round_ + 1 == 3


def main() -> None:
    rng = np.random.default_rng(0)
    result = MCTS(Gamble(), MCTSConfig(num_simulations=500)).search((0, 0.0), rng)
    print("Gamble: action", result.action, "(1 = roll), visits", result.visit_counts)
    # Q values average the returns of every simulation, exploratory actions and random
    # rollouts included, so they sit below the exact values 11/3 (bank, then roll) and 4.
    q_bank, q_roll = result.q_values
    print(f"  Q(bank) {q_bank:.2f} (exact 3.67), Q(roll) {q_roll:.2f} (exact 4.00)")

    env = gym.make("rlagent/CustomerService-v0")
    for oracle in (False, True):
        # With no trained model nothing reads the text, so the belief is the env's own
        # likelihood of the transcript ("env"): a perfect-model upper bound, not a fair agent.
        agent = make_planning_agent(None, env, simulations=32, seed=0, oracle=oracle, belief="env")
        obs, info = env.reset(seed=0)
        agent.reset(seed=0)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs))
            total += reward
            done = terminated or truncated
        label = "oracle (sees hidden state)" if oracle else "env belief (reads the labels)"
        print(f"CustomerService, random-rollout MCTS, {label}: return {total:.1f},", end=" ")
        print(f"metrics {info['episode_metrics']}")


if __name__ == "__main__":
    main()
