"""Tabular stochastic MDPs with exact solutions: the planner's known-answer test bed.

:class:`TabularMDP` is a planning model (``actions``/``step``) over a table of ``K`` chance
outcomes per state-action pair, with exact ``Q*`` by backward induction (finite horizon) or
value iteration (discounted, infinite horizon). :func:`random_mdp` draws one at random;
:func:`branching_mdp` and :func:`lucky_outcome_mdp` are two-step MDPs on which open-loop search
and "freeze the first sampled outcome" search are known to choose wrongly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlagent.planning.model import PlanningConfigError

__all__ = [
    "ExactValueEvaluator",
    "TabularMDP",
    "branching_mdp",
    "lucky_outcome_mdp",
    "random_mdp",
]


class TabularMDP:
    """A tabular MDP with ``K`` chance outcomes per (state, action).

    With a finite ``horizon`` the planning state is ``(t, s)`` (step index, table state) and the
    episode ends after ``horizon`` steps; with ``horizon=None`` the state is ``s`` and episodes
    never end (use a ``discount < 1`` and a depth or rollout limit).

    Args:
        next_states: ``[S, A, K]`` int, the table state reached by each outcome.
        probs: ``[S, A, K]`` float, outcome probabilities (each row sums to 1).
        rewards: ``[S, A, K]`` float, reward of each outcome.
        horizon: Steps per episode, or ``None`` for an infinite horizon.
        discount: Discount used by :meth:`q_values`.
        initial_state: Table state at ``t = 0``.
    """

    def __init__(
        self,
        next_states: np.ndarray,
        probs: np.ndarray,
        rewards: np.ndarray,
        *,
        horizon: int | None,
        discount: float = 1.0,
        initial_state: int = 0,
    ) -> None:
        next_states = np.asarray(next_states, dtype=np.int64)
        probs = np.asarray(probs, dtype=np.float64)
        rewards = np.asarray(rewards, dtype=np.float64)
        if next_states.ndim != 3 or probs.shape != next_states.shape != rewards.shape:
            raise PlanningConfigError(
                f"TabularMDP: next_states, probs and rewards must share one [S, A, K] shape, got "
                f"{next_states.shape}, {probs.shape} and {rewards.shape}."
            )
        if not np.allclose(probs.sum(axis=2), 1.0):
            raise PlanningConfigError(
                "TabularMDP: probs must sum to 1 over the outcome axis (axis 2); normalise them "
                "with probs / probs.sum(axis=2, keepdims=True)."
            )
        if horizon is None and not discount < 1.0:
            raise PlanningConfigError(
                f"TabularMDP: horizon=None needs discount < 1, got discount={discount}."
            )
        self.next_states = next_states
        self.probs = probs
        self.rewards = rewards
        self.horizon = horizon
        self.discount = float(discount)
        self.initial_state = int(initial_state)
        num_states, num_actions, _ = next_states.shape
        self.num_states = num_states
        self.num_actions = num_actions
        self._actions = tuple(range(num_actions))
        # Plain Python tables: indexing lists is several times faster than numpy scalars.
        cum = np.cumsum(probs, axis=2)
        cum[..., -1] = np.inf
        self._cum = cum.tolist()
        self._next = next_states.tolist()
        self._rew = rewards.tolist()

    @property
    def initial(self) -> Any:
        """The initial planning state (``(0, initial_state)``, or ``initial_state``)."""
        return (0, self.initial_state) if self.horizon is not None else self.initial_state

    def actions(self, state: Any) -> Sequence[int]:
        """All ``A`` actions are legal everywhere."""
        return self._actions

    def step(self, state: Any, action: int, rng: np.random.Generator) -> tuple[Any, float, bool]:
        """Sample an outcome of ``action`` in ``state``."""
        u = rng.random()
        if self.horizon is None:
            cum = self._cum[state][action]
            k = 0
            while u >= cum[k]:
                k += 1
            return self._next[state][action][k], self._rew[state][action][k], False
        t, s = state
        cum = self._cum[s][action]
        k = 0
        while u >= cum[k]:
            k += 1
        t += 1
        return (t, self._next[s][action][k]), self._rew[s][action][k], t >= self.horizon

    def q_values(self, tol: float = 1e-12, max_iterations: int = 100_000) -> np.ndarray:
        """Exact optimal action values.

        Returns:
            ``[H, S, A]`` by backward induction when the horizon is finite (``Q[t, s, a]``), or
            ``[S, A]`` by value iteration to ``tol`` when it is infinite.
        """
        expected_r = (self.probs * self.rewards).sum(axis=2)
        gamma = self.discount
        if self.horizon is None:
            v = np.zeros(self.num_states)
            for _ in range(max_iterations):
                q = expected_r + gamma * (self.probs * v[self.next_states]).sum(axis=2)
                v_new = q.max(axis=1)
                if np.max(np.abs(v_new - v)) < tol:
                    return expected_r + gamma * (self.probs * v_new[self.next_states]).sum(axis=2)
                v = v_new
            return q
        q = np.zeros((self.horizon, self.num_states, self.num_actions))
        v_next = np.zeros(self.num_states)
        for t in range(self.horizon - 1, -1, -1):
            q[t] = expected_r + gamma * (self.probs * v_next[self.next_states]).sum(axis=2)
            v_next = q[t].max(axis=1)
        return q

    def root_q(self) -> np.ndarray:
        """``[A]`` exact optimal action values at :attr:`initial`."""
        q = self.q_values()
        return q[0, self.initial_state] if self.horizon is not None else q[self.initial_state]


class ExactValueEvaluator:
    """Leaf value = the exact optimal value ``V*`` of the state (uniform priors).

    Args:
        mdp: The tabular MDP whose values to return.
    """

    def __init__(self, mdp: TabularMDP) -> None:
        q = mdp.q_values()
        self._finite = mdp.horizon is not None
        self._v = q.max(axis=-1).tolist()

    def evaluate(self, state: Any, rng: np.random.Generator) -> tuple[None, float]:
        """Return ``(None, V*(state))``."""
        if self._finite:
            t, s = state
            return None, self._v[t][s]
        return None, self._v[state]

    def evaluate_batch(self, states: Sequence[Any], rng: np.random.Generator) -> list:
        """:meth:`evaluate` for each state."""
        return [self.evaluate(s, rng) for s in states]


def random_mdp(
    rng: np.random.Generator,
    *,
    num_states: int = 20,
    num_actions: int = 4,
    num_outcomes: int = 3,
    horizon: int | None = 6,
    discount: float = 1.0,
) -> TabularMDP:
    """Draw a random tabular MDP.

    Next states are uniform over the ``num_states`` states, outcome probabilities are
    Dirichlet(1) per (state, action), rewards are uniform in ``[0, 1)`` per outcome.

    Args:
        rng: Source of the draw.
        num_states: ``S``.
        num_actions: ``A``.
        num_outcomes: ``K``, chance outcomes per (state, action).
        horizon: Steps per episode (``None``: infinite, needs ``discount < 1``).
        discount: Discount factor.

    Returns:
        The MDP, starting in table state 0.
    """
    shape = (num_states, num_actions, num_outcomes)
    return TabularMDP(
        rng.integers(0, num_states, size=shape),
        rng.dirichlet(np.ones(num_outcomes), size=shape[:2]),
        rng.random(shape),
        horizon=horizon,
        discount=discount,
    )


def branching_mdp() -> TabularMDP:
    """Two steps; the best second action depends on the first step's chance outcome.

    Action 0 leads to state X or Y (1/2 each); in X action 0 pays 1, in Y action 1 pays 1, the
    other pays 0, so action 0 is worth 1. Action 1 leads to Z, where every action pays 0.6.
    Open-loop search averages X and Y in one node (each second action looks worth 0.5) and so
    prefers action 1. Optimal first action: 0.
    """
    next_states = np.zeros((4, 2, 2), dtype=np.int64)
    probs = np.full((4, 2, 2), 0.5)
    rewards = np.zeros((4, 2, 2))
    next_states[0, 0] = (1, 2)
    next_states[0, 1] = (3, 3)
    rewards[1, 0] = 1.0
    rewards[2, 1] = 1.0
    rewards[3] = 0.6
    return TabularMDP(next_states, probs, rewards, horizon=2)


def lucky_outcome_mdp(p_lucky: float = 0.35) -> TabularMDP:
    """Two steps; a lucky first outcome makes the worse first action look best.

    Action 0 leads to a lucky state (probability ``p_lucky``, then every action pays 1) or an
    unlucky one (pays 0): worth ``p_lucky``. Action 1 leads to a safe state paying 0.5. A
    search that freezes the first sampled outcome of each edge picks action 0 whenever that
    sample was lucky. Optimal first action: 1.
    """
    next_states = np.zeros((4, 2, 2), dtype=np.int64)
    probs = np.full((4, 2, 2), 0.5)
    rewards = np.zeros((4, 2, 2))
    next_states[0, 0] = (1, 2)
    probs[0, 0] = (p_lucky, 1.0 - p_lucky)
    next_states[0, 1] = (3, 3)
    rewards[1] = 1.0
    rewards[3] = 0.5
    return TabularMDP(next_states, probs, rewards, horizon=2)
