"""A small MDP with known values, for the exact-answer tests of the off-policy estimators.

Three states, two actions, at most three decisions; Bernoulli rewards; from state 2, action 1
ends the episode with probability 1/2, so episode lengths depend on the policy. The behaviour
policy ``MU`` logs; the target policy ``PI`` is evaluated. The truth is computed by enumerating
every history, and the action values ``Q_t(s, a)`` by backward induction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rlagent.datasets import OPEData

N_STATES, N_ACTIONS, HORIZON = 3, 2, 3
START = np.array([0.5, 0.3, 0.2])
#: TRANSITIONS[s, a, s'].
TRANSITIONS = np.array(
    [
        [[0.1, 0.6, 0.3], [0.7, 0.2, 0.1]],
        [[0.3, 0.3, 0.4], [0.0, 0.5, 0.5]],
        [[0.5, 0.0, 0.5], [0.2, 0.4, 0.4]],
    ]
)
#: END[s, a]: probability that the episode ends after taking a in s.
END = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.5]])
#: REWARD[s, a]: the Bernoulli reward's mean.
REWARD = np.array([[0.1, 0.8], [0.5, 0.3], [0.9, 0.2]])
MU = np.array([[0.5, 0.5], [0.7, 0.3], [0.4, 0.6]])
PI = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])


def true_value(policy: np.ndarray = PI, gamma: float = 1.0) -> float:
    """``E_policy[sum_t gamma^t r_t]`` by enumerating every history (states, actions, ends)."""
    total = 0.0
    for length in range(1, HORIZON + 1):
        for states in itertools.product(range(N_STATES), repeat=length):
            for actions in itertools.product(range(N_ACTIONS), repeat=length):
                p = START[states[0]]
                for t in range(length):
                    s, a = states[t], actions[t]
                    p *= policy[s, a]
                    if t + 1 < length:
                        p *= (1 - END[s, a]) * TRANSITIONS[s, a, states[t + 1]]
                    elif length < HORIZON:
                        p *= END[s, a]  # it ended here, before the horizon
                ret = sum(gamma**t * REWARD[states[t], actions[t]] for t in range(length))
                total += p * ret
    return total


def action_values(policy: np.ndarray = PI, gamma: float = 1.0) -> np.ndarray:
    """``Q[t, s, a]`` of ``policy`` by backward induction."""
    q = np.zeros((HORIZON, N_STATES, N_ACTIONS))
    v_next = np.zeros(N_STATES)
    for t in reversed(range(HORIZON)):
        q[t] = REWARD + gamma * (1 - END) * (TRANSITIONS @ v_next)
        v_next = (policy * q[t]).sum(axis=1)
    return q


@dataclass
class Logged:
    """``n`` simulated episodes as ``[n, HORIZON]`` arrays (padding after each end)."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray

    def data(self, q_table: np.ndarray | None = None, target: np.ndarray = PI) -> OPEData:
        """The :class:`OPEData`, with ``q`` and ``v`` from ``Q[t, s, a]`` when given."""
        t = np.arange(HORIZON)[None, :]
        q = v = None
        if q_table is not None:
            q = q_table[t, self.states, self.actions]
            v = (target[self.states] * q_table[t, self.states]).sum(axis=-1)
        return OPEData(
            rewards=self.rewards,
            behaviour=MU[self.states, self.actions],
            target=target[self.states, self.actions],
            lengths=self.lengths,
            q=q,
            v=v,
        )

    def ragged(self, values: np.ndarray) -> list[np.ndarray]:
        """Per episode, its decisions' rows of ``values`` (``[n, HORIZON, ...]``)."""
        return [values[i, :length] for i, length in enumerate(self.lengths)]

    def features(self) -> list[np.ndarray]:
        """Per episode, one-hot features of ``(t, s)``: tabular FQE."""
        out = []
        for i, length in enumerate(self.lengths):
            f = np.zeros((length, HORIZON * N_STATES))
            f[np.arange(length), np.arange(length) * N_STATES + self.states[i, :length]] = 1.0
            out.append(f)
        return out


def simulate(n: int, rng: np.random.Generator, policy: np.ndarray = MU) -> Logged:
    """``n`` episodes of ``policy``."""
    states = np.zeros((n, HORIZON), dtype=np.int64)
    actions = np.zeros((n, HORIZON), dtype=np.int64)
    rewards = np.zeros((n, HORIZON))
    lengths = np.zeros(n, dtype=np.int64)
    s = rng.choice(N_STATES, size=n, p=START)
    alive = np.ones(n, dtype=bool)
    for t in range(HORIZON):
        a = (rng.random(n) < policy[s, 1]).astype(np.int64)
        r = (rng.random(n) < REWARD[s, a]).astype(np.float64)
        states[:, t] = np.where(alive, s, 0)
        actions[:, t] = np.where(alive, a, 0)
        rewards[:, t] = np.where(alive, r, 0.0)
        lengths += alive
        alive &= rng.random(n) >= END[s, a]
        cumulative = TRANSITIONS[s, a].cumsum(axis=1)
        s = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), N_STATES - 1)
    return Logged(states, actions, rewards, lengths)
