"""A Gymnasium environment with ``get_state``/``set_state`` as a planning model.

The adapter steps a private copy of the environment: for each transition it restores the state
with ``set_state``, hands the search's generator to the copy (``np_random = rng``), steps, and
reads the next state back with ``get_state``. The environment the agent acts in is never
touched. Actions are integer indices: ``Discrete(n)`` maps to its ``n`` actions, and
``MultiDiscrete(nvec)`` to every combination in row-major order (slate ``(i, j)`` of
``MultiDiscrete([10, 10])`` is index ``10 * i + j``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rlagent.planning.model import PlanningStateError

__all__ = ["EnvModel", "action_table"]

_MAX_ACTIONS = 100_000


def action_table(space: gym.Space) -> list[Any]:
    """Every action of a ``Discrete`` or ``MultiDiscrete`` space, in index order.

    Args:
        space: The environment's action space.

    Returns:
        A list whose entry ``i`` is the environment action for planning index ``i``.

    Raises:
        PlanningStateError: For other spaces, or more than 100,000 actions.
    """
    if isinstance(space, gym.spaces.Discrete):
        return [int(space.start) + i for i in range(int(space.n))]
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        count = int(np.prod(space.nvec))
        if count > _MAX_ACTIONS:
            raise PlanningStateError(
                f"action_table: MultiDiscrete({space.nvec.tolist()}) has {count} actions, more "
                f"than the {_MAX_ACTIONS} a planner can enumerate; use a smaller action space."
            )
        start = space.start if space.start is not None else np.zeros_like(space.nvec)
        return [
            np.asarray(combo, dtype=space.dtype) + start
            for combo in itertools.product(*(range(int(n)) for n in space.nvec))
        ]
    raise PlanningStateError(
        f"action_table: cannot enumerate a {type(space).__name__} action space; the planner "
        "needs Discrete or one-dimensional MultiDiscrete actions."
    )


class EnvModel:
    """Plan on an environment that implements ``get_state``/``set_state``.

    Args:
        env: The environment (wrappers are looked through with ``env.unwrapped``). It needs
            ``get_state() -> State`` and ``set_state(State)``, with hashable states; for
            ``observe`` also ``observe()``.
        copy_env: Plan on a deep copy (default) so that the caller's environment keeps its
            state and generator; ``False`` plans on ``env.unwrapped`` itself.
        reward_shaping: Return shaped rewards ``r + phi(s') - phi(s)`` with the environment's
            ``shaping_potential(state)`` as ``phi`` (0 after the episode ends), as
            :class:`rlagent.wrappers.PotentialShaping` does in training: for a critic trained
            on shaped rewards. Action values then differ from unshaped ones by ``phi`` of the
            state searched from, the same for every action.
        expected_rewards: Return the environment's ``expected_reward(action, state,
            shaped=reward_shaping)`` of each step, the reward averaged over every response the
            step could sample, while the next state is still sampled: the same action values,
            without the noise of one sampled click (a Rao-Blackwellised reward).

    Attributes:
        env: The environment stepped by the planner.
        num_actions: Number of planning actions.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        copy_env: bool = True,
        reward_shaping: bool = False,
        expected_rewards: bool = False,
    ) -> None:
        base = env.unwrapped
        names = ("get_state", "set_state")
        names += ("shaping_potential",) if reward_shaping else ()
        names += ("expected_reward",) if expected_rewards else ()
        for name in names:
            if not callable(getattr(base, name, None)):
                raise PlanningStateError(
                    f"EnvModel: {type(base).__name__} has no {name}() method; planning on an "
                    "environment needs get_state() -> State and set_state(State), "
                    "shaping_potential(state) with reward_shaping=True and "
                    "expected_reward(action, state, shaped=...) with expected_rewards=True (see "
                    "docs/planning.md, 'Writing your own model')."
                )
        self.env = copy.deepcopy(base) if copy_env else base
        self._table = action_table(base.action_space)
        self._indices = tuple(range(len(self._table)))
        self._discrete = isinstance(base.action_space, gym.spaces.Discrete)
        self.num_actions = len(self._table)
        self.reward_shaping = bool(reward_shaping)
        self.expected_rewards = bool(expected_rewards)

    def actions(self, state: Any) -> Sequence[int]:
        """Every action index (the bundled environments allow every action everywhere)."""
        return self._indices

    def step(self, state: Any, action: int, rng: np.random.Generator) -> tuple[Any, float, bool]:
        """Restore ``state``, step with ``rng`` and return ``(next_state, reward, done)``."""
        env = self.env
        env.set_state(state)
        env.np_random = rng
        env_action = self._table[action]
        if self.expected_rewards:
            expected = float(env.expected_reward(env_action, state, shaped=self.reward_shaping))
        _, reward, terminated, truncated, _ = env.step(env_action)
        next_state = env.get_state()
        done = bool(terminated or truncated)
        reward = float(reward)
        if self.expected_rewards:
            reward = expected
        elif self.reward_shaping:
            potential = env.shaping_potential
            reward += (0.0 if done else potential(next_state)) - potential(state)
        return next_state, reward, done

    def observe(self, state: Any) -> Any:
        """The raw observation of ``state`` (needs the environment's ``observe()``)."""
        env = self.env
        env.set_state(state)
        return env.observe()

    def privileged(self, state: Any) -> Any:
        """The environment's ``privileged_features(state)`` (hidden state, for a critic)."""
        return self.env.privileged_features(state)

    def action_mask(self, state: Any) -> np.ndarray:
        """The environment's ``action_masks()`` in ``state``, as float32 (1 allowed, 0 not).

        What a policy trained with action masks reads in its ``"action_mask"`` entry; the
        planner still searches every action, and the masked policy gives the forbidden ones
        no prior.

        Raises:
            PlanningStateError: The environment has no ``action_masks()`` method.
        """
        env = self.env
        masks = getattr(env, "action_masks", None)
        if not callable(masks):
            raise PlanningStateError(
                f"EnvModel.action_mask: {type(env).__name__} has no action_masks() method, "
                "which a policy trained with action masks reads."
            )
        env.set_state(state)
        return np.asarray(masks(), dtype=np.float32).reshape(-1)

    def to_env_action(self, index: int) -> Any:
        """The environment action of a planning index (an ``int`` or a numpy array)."""
        return self._table[int(index)]

    def to_index(self, action: Any) -> int:
        """The planning index of an environment action."""
        if self._discrete:
            return int(action) - int(self._table[0])
        target = np.asarray(action).tolist()
        for i, candidate in enumerate(self._table):
            if candidate.tolist() == target:
                return i
        raise PlanningStateError(
            f"EnvModel.to_index: {action!r} is not an action of this environment's space."
        )
