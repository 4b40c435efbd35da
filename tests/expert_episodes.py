"""Logged customer-service episodes for the offline-learning tests: expert or random logger."""

from __future__ import annotations

import numpy as np

from rlagent.datasets import Episode

#: The random logger's extra share of ``escalate`` (its episodes go badly).
ESCALATE_SHARE = 0.5


def expert_episode(
    env,
    expert,
    seed: int,
    good: bool,
    rng: np.random.Generator,
    escalate_share: float = ESCALATE_SHARE,
) -> Episode:
    """One episode: the env's labelled expert acting (good) or the random logger (bad)."""
    n = env.action_space.n
    random_policy = np.full(n, (1 - escalate_share) / n)
    random_policy[env.unwrapped.action_names.index("escalate")] += escalate_share
    observation, _ = env.reset(seed=seed)
    expert.reset(seed)
    observations, actions, rewards, probabilities = [observation], [], [], []
    done = False
    while not done:
        if good:
            action = int(expert.act(observation))
            probs = np.eye(n)[action]
        else:
            probs = random_policy
            action = int(rng.choice(n, p=probs))
        observation, reward, terminated, truncated, _ = env.step(action)
        observations.append(observation)
        actions.append(action)
        rewards.append(reward)
        probabilities.append(probs)
        done = terminated or truncated
    return Episode(
        id=seed,
        observations=observations,
        actions=np.array(actions),
        rewards=np.array(rewards, dtype=np.float64),
        terminated=terminated,
        truncated=truncated,
        action_probabilities=np.array(probabilities),
        propensities=np.array([p[a] for p, a in zip(probabilities, actions, strict=True)]),
    )
