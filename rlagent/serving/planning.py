"""Planning for live chats: ``rlagent evaluate --planner mcts``'s planner, rooted in a live chat.

The planner of :func:`rlagent.planning.make_planning_agent` reads the observable state of the
env it acts in at every decision. A live chat has no simulator behind it, so
:class:`LiveChatPlanners` gives each chat its own planning agent whose "env" is the chat:
its :meth:`~envs.customer_service.LiveDialogue.state` (the transcript, the turn, the actions,
the hidden fields unknown). The hidden fields are drawn by the learned belief
(:class:`rlagent.planning.LearnedBelief`), which reads them from the model's auxiliary probe
of the observation, and the futures are simulated on the env the model was trained on
(:func:`rlagent.planning.training_env`), exactly as ``evaluate`` plans.

The other belief (``"env"``) weights particles by the env's likelihood of the customer's
wording ids, which live text does not have; and a recommendation session's candidates are
free texts, not catalogue items a model env could simulate: neither is offered.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from rlagent.planning import (
    BeliefUnavailableError,
    MCTSAgent,
    ModelEnvActionsError,
    PlanningError,
    make_planning_agent,
    training_env,
)
from rlagent.serving.errors import ServingConfigError

__all__ = ["LiveChatPlanners", "PlannedDecision"]

_HOW = (
    "planner='mcts' plans a live chat with the learned belief, which reads the hidden state "
    "from the model's auxiliary probe and simulates on the env the model was trained on"
)


class _LiveChatEnv:
    """What a planning agent reads of the env it acts in, for one live chat."""

    def __init__(self, session: Any, env: gym.Env) -> None:
        self.session = session
        base = env.unwrapped
        self.action_space = base.action_space
        self.action_names = tuple(base.action_names)
        self._sample_hidden = base.sample_hidden

    @property
    def unwrapped(self) -> _LiveChatEnv:
        return self

    def get_state(self) -> Any:
        return self.session.state()

    def sample_hidden(
        self, state: Any, rng: np.random.Generator, *, posterior: np.ndarray | None = None
    ) -> Any:
        return self._sample_hidden(state, rng, posterior=posterior)


class PlannedDecision:
    """What one search decided: the action, the visit distribution and the root value.

    Attributes:
        action: The env action chosen (the most visited root action).
        visits: Visit share of each action index, ``[n_actions]`` (0 for actions not tried).
        value: The search's value estimate of the root, in the planning model's reward units
            (``nan`` when too few simulations ran).
    """

    __slots__ = ("action", "value", "visits")

    def __init__(self, action: int, visits: np.ndarray, value: float) -> None:
        self.action = action
        self.visits = visits
        self.value = value


class LiveChatPlanners:
    """One MCTS planning agent per live chat, built as ``rlagent evaluate --planner mcts`` does.

    Args:
        model: The PPO model (it guides the search and its probe is the belief).
        env: The served env (its ``sample_hidden`` draws the hidden fields; its action names
            must be the training env's).
        simulations: Simulations per decision.
        seed: Seed of each chat's planner (every chat starts from the same seed, as episode 0
            of ``evaluate --seed`` does).
        settings: Planner settings (:class:`rlagent.planning.MCTSConfig` fields), e.g. the
            env's bundled ones.

    Raises:
        ServingConfigError: The model has no auxiliary probe of the hidden state, records no
            training env, or its training env has other actions than the served env.
    """

    def __init__(
        self,
        model: Any,
        env: gym.Env,
        *,
        simulations: int,
        seed: int,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._model = model
        self._env = env
        self._simulations = simulations
        self._seed = seed
        self._settings = dict(settings or {})
        try:
            self._plan_env = training_env(model)
        except BeliefUnavailableError as exc:
            raise ServingConfigError(f"{_HOW}; {exc}") from None
        self._agents: weakref.WeakKeyDictionary[Any, MCTSAgent] = weakref.WeakKeyDictionary()
        self._agent_for(env.unwrapped.live_session())  # check now, not at the first request

    def decide(self, session: Any) -> PlannedDecision:
        """Search from ``session``'s current state; the session must await the agent."""
        agent = self._agent_for(session)
        action = agent.act(None)
        result = agent.last_result
        visits = np.zeros(int(self._env.unwrapped.action_space.n), dtype=np.float64)
        total = float(sum(result.visit_counts)) or 1.0
        for index, count in zip(result.actions, result.visit_counts, strict=True):
            visits[int(agent.env_model.to_env_action(index))] = count / total
        return PlannedDecision(int(action), visits, float(result.value))

    def _agent_for(self, session: Any) -> MCTSAgent:
        agent = self._agents.get(session)
        if agent is None:
            try:
                agent = make_planning_agent(
                    self._model,
                    _LiveChatEnv(session, self._env),
                    simulations=self._simulations,
                    seed=self._seed,
                    belief="learned",
                    model_env=self._plan_env,
                    settings=self._settings,
                )
            except (BeliefUnavailableError, ModelEnvActionsError) as exc:
                raise ServingConfigError(f"{_HOW}; {exc}") from None
            except PlanningError as exc:
                raise ServingConfigError(f"The planner settings are not usable: {exc}") from None
            self._agents[session] = agent
        return agent
