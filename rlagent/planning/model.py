"""The planning-model and evaluator protocols, and the planner's exception classes.

A *model* tells the planner which actions are legal in a state and samples a transition. A user
can plan on any plain Python class with these two methods; nothing needs to be subclassed::

    class Coin:
        def actions(self, state):
            return (0, 1)

        def step(self, state, action, rng):
            heads = rng.random() < 0.5
            return state + 1, float(heads == bool(action)), state + 1 >= 3

States must be hashable values (ints, strings, tuples, frozen dataclasses): two transitions that
lead to equal states are the same chance outcome. The planner never copies or mutates a state.

An *evaluator* gives, for a leaf state, prior probabilities over ``model.actions(state)`` (or
``None`` for uniform) and an estimate of the discounted return from that state onwards.

An environment planned on through :class:`~rlagent.planning.EnvModel` with hidden state (its
state class names the fields in ``HIDDEN``) offers the beliefs' seams:

* ``sample_hidden(state, rng)`` draws the hidden fields from its prior and
  ``log_likelihood(state)`` scores the observed history under them
  (:class:`~rlagent.planning.ParticleBelief`, ``belief="env"``);
* ``sample_hidden(state, rng, posterior=p)`` draws them from ``p``, one probability per entry
  of its ``privileged_features()`` as a model's auxiliary probe predicts them from the
  observation, reading only the observable fields of ``state``
  (:class:`~rlagent.planning.LearnedBelief`, ``belief="learned"``, the default where offered).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "BatchEvaluator",
    "BeliefUnavailableError",
    "Evaluator",
    "Model",
    "ModelEnvActionsError",
    "PlanningError",
    "PlanningConfigError",
    "PlanningStateError",
]

#: A planning state: any hashable value.
State = Hashable


class PlanningError(Exception):
    """Base class of every error raised by :mod:`rlagent.planning`."""


class PlanningConfigError(PlanningError, ValueError):
    """A planner setting is out of range or two settings contradict each other."""


class PlanningStateError(PlanningError, ValueError):
    """A state, model or environment cannot be planned on as given."""


class BeliefUnavailableError(PlanningConfigError):
    """The belief asked for cannot be built (e.g. a learned belief from a model without probe)."""


class ModelEnvActionsError(PlanningStateError):
    """The planner's model env and the env the agent acts in have different actions."""


@runtime_checkable
class Model(Protocol):
    """A sampling model of the environment, as seen by the planner."""

    def actions(self, state: State) -> Sequence[int]:
        """The legal actions in ``state`` (non-empty unless ``state`` is terminal)."""
        ...

    def step(
        self, state: State, action: int, rng: np.random.Generator
    ) -> tuple[State, float, bool]:
        """Sample ``(next_state, reward, done)``, drawing all randomness from ``rng``."""
        ...


@runtime_checkable
class Evaluator(Protocol):
    """Leaf evaluation: prior over the legal actions and a value estimate."""

    def evaluate(
        self, state: State, rng: np.random.Generator
    ) -> tuple[Sequence[float] | None, float]:
        """Return ``(priors, value)`` for one state.

        Args:
            state: A non-terminal state.
            rng: The search's random generator.

        Returns:
            ``priors``: probabilities aligned with ``model.actions(state)`` (``None`` means
            uniform); ``value``: estimated discounted return from ``state`` onwards.
        """
        ...


@runtime_checkable
class BatchEvaluator(Evaluator, Protocol):
    """An evaluator that can also score many leaves at once (one network forward pass)."""

    def evaluate_batch(
        self, states: Sequence[State], rng: np.random.Generator
    ) -> list[tuple[Sequence[float] | None, float]]:
        """Return one ``(priors, value)`` pair per state, in order."""
        ...
