"""Beliefs over hidden state: what the planner uses instead of the true hidden fields.

An environment state is a frozen dataclass whose class names
the fields the agent cannot observe in ``HIDDEN``. Before the planner sees a state,
:func:`hide` replaces those fields with ``None``; :class:`ParticleBelief` then draws candidate
values from the environment's prior (``sample_hidden``), weights them by how likely they make
the observable history recorded in the state (``log_likelihood``), and resamples. Each
simulation of the search plays out one particle; the tree is keyed by the observable part of
the states only (:class:`BeliefModel`), as in POMCP, so the statistics of a node pool every
particle consistent with what was observed.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from rlagent.planning.model import PlanningConfigError, PlanningStateError

__all__ = ["BeliefModel", "ParticleBelief", "hidden_fields", "hide", "observable_key"]


def hidden_fields(state: Any) -> tuple[str, ...]:
    """The names in ``type(state).HIDDEN``.

    Raises:
        PlanningStateError: If the state is not a dataclass with a ``HIDDEN`` class attribute.
    """
    hidden = getattr(type(state), "HIDDEN", None)
    if not dataclasses.is_dataclass(state) or hidden is None:
        raise PlanningStateError(
            f"{type(state).__name__} is not a dataclass with a HIDDEN class attribute; a "
            "state used with beliefs must be a frozen dataclass naming its unobservable fields "
            "in HIDDEN: ClassVar[tuple[str, ...]]."
        )
    return tuple(hidden)


def hide(state: Any) -> Any:
    """A copy of ``state`` with every ``HIDDEN`` field set to ``None``."""
    return dataclasses.replace(state, **{name: None for name in hidden_fields(state)})


def observable_key(state: Any) -> Callable[[Any], Hashable]:
    """A fast function mapping a state of ``type(state)`` to the tuple of its observable fields."""
    hidden = set(hidden_fields(state))
    names = [f.name for f in dataclasses.fields(state) if f.name not in hidden]
    getter = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda s: (getter(s),)
    return getter


class ParticleBelief:
    """Importance-resampled particles of the hidden fields given the observable history.

    At each real step, ``num_proposals`` states are drawn from the environment's prior given
    the observable part (``env.sample_hidden(observable_state, rng)``), weighted by
    ``exp(env.log_likelihood(state))`` and resampled (systematic resampling) to
    ``num_particles``. The observable history lives in the state itself, so each update
    conditions on everything observed so far without propagating old particles.

    Args:
        env: The (unwrapped) environment providing ``sample_hidden`` and ``log_likelihood``.
        num_particles: Particles kept.
        num_proposals: Prior draws weighted per update. When none of them explains the
            history (all zero likelihood, e.g. a rare intent), further batches are drawn, up to
            ``max_proposals`` in all.
        max_proposals: Upper bound on the prior draws of one update.

    Attributes:
        particles: The current particles (full states).
        effective_sample_size: ``1 / sum(w_i ** 2)`` of the normalised weights at the last
            update: a small value warns that the prior rarely explains the history.
    """

    def __init__(
        self,
        env: Any,
        *,
        num_particles: int = 64,
        num_proposals: int = 256,
        max_proposals: int = 16_384,
    ) -> None:
        for name in ("sample_hidden", "log_likelihood"):
            if not callable(getattr(env, name, None)):
                raise PlanningStateError(
                    f"ParticleBelief: {type(env).__name__} has no {name}() method; planning "
                    "without the true hidden state needs sample_hidden(state, rng) and "
                    "log_likelihood(state) (or pass oracle=True to plan on the true state)."
                )
        if not isinstance(num_particles, int) or num_particles < 1:
            raise PlanningConfigError(
                f"ParticleBelief: num_particles={num_particles!r}, expected an int >= 1."
            )
        if not isinstance(num_proposals, int) or num_proposals < num_particles:
            raise PlanningConfigError(
                f"ParticleBelief: num_proposals={num_proposals!r}, expected an int >= "
                f"num_particles ({num_particles})."
            )
        if not isinstance(max_proposals, int) or max_proposals < num_proposals:
            raise PlanningConfigError(
                f"ParticleBelief: max_proposals={max_proposals!r}, expected an int >= "
                f"num_proposals ({num_proposals})."
            )
        self.env = env
        self.num_particles = num_particles
        self.num_proposals = num_proposals
        self.max_proposals = max_proposals
        self.particles: tuple[Any, ...] = ()
        self.effective_sample_size = math.nan

    def update(self, observable_state: Any, rng: np.random.Generator) -> tuple[Any, ...]:
        """Draw particles for a state whose hidden fields are unknown.

        Args:
            observable_state: The current state with its hidden fields blanked (:func:`hide`).
            rng: Source of the draws.

        Returns:
            The new particles (also stored in :attr:`particles`).

        Raises:
            PlanningStateError: If every proposal has zero likelihood.
        """
        sample = self.env.sample_hidden
        loglik = self.env.log_likelihood
        proposals: list[Any] = []
        scores: list[float] = []
        top = -math.inf
        while not np.isfinite(top) and len(proposals) < self.max_proposals:
            batch = [sample(observable_state, rng) for _ in range(self.num_proposals)]
            proposals += batch
            scores += [loglik(p) for p in batch]
            top = max(scores)
        if not np.isfinite(top):
            raise PlanningStateError(
                f"ParticleBelief: all {len(proposals)} prior draws have zero likelihood "
                "for the observed history; the environment's sample_hidden and log_likelihood "
                "disagree, or max_proposals is too small."
            )
        logw = np.array(scores, dtype=np.float64)
        w = np.exp(logw - top)
        w /= w.sum()
        self.effective_sample_size = float(1.0 / np.sum(w * w))
        positions = (rng.random() + np.arange(self.num_particles)) / self.num_particles
        idx = np.minimum(np.searchsorted(np.cumsum(w), positions), len(w) - 1)
        self.particles = tuple(proposals[i] for i in idx)
        return self.particles


@dataclasses.dataclass(frozen=True)
class _BeliefRoot:
    """The root of a belief search: the observable key of the current state."""

    key: Hashable


class BeliefModel:
    """A planning model whose root is a belief and whose tree is keyed by observations.

    Use :meth:`root` as the search's root state: every simulation starting there draws one
    particle (uniformly, from the given particles) and continues with the full sampled state,
    so deeper states carry sampled hidden fields; ``key`` maps every state to its observable
    part, so nodes never distinguish states by their hidden fields.

    Args:
        model: The underlying model (e.g. an :class:`~rlagent.planning.EnvModel`).
        particles: Full states (hidden fields sampled); may be given later with
            :meth:`set_particles`, but before the first search.
    """

    def __init__(self, model: Any, particles: Sequence[Any] = ()) -> None:
        self.model = model
        self._particles: tuple[Any, ...] = ()
        self._key: Callable[[Any], Hashable] | None = None
        if particles:
            self.set_particles(particles)

    def set_particles(self, particles: Sequence[Any]) -> None:
        """Replace the particles (after a real step)."""
        if not particles:
            raise PlanningStateError("BeliefModel: got no particles; pass at least one state.")
        self._particles = tuple(particles)
        if self._key is None:
            self._key = observable_key(self._particles[0])

    def root(self) -> _BeliefRoot:
        """The root state standing for the current belief."""
        if not self._particles:
            raise PlanningStateError(
                "BeliefModel.root: no particles yet; call set_particles() first."
            )
        return _BeliefRoot(self._key(self._particles[0]))

    def key(self, state: Any) -> Hashable:
        """The observable part of ``state`` (the tree's node key)."""
        if state.__class__ is _BeliefRoot:
            return state.key
        return self._key(state)

    def _resolve(self, state: Any, rng: np.random.Generator | None) -> Any:
        if state.__class__ is not _BeliefRoot:
            return state
        particles = self._particles
        if rng is None:
            return particles[0]
        return particles[int(rng.random() * len(particles))]

    def actions(self, state: Any) -> Sequence[int]:
        """Legal actions (of any particle at the root)."""
        return self.model.actions(self._resolve(state, None))

    def step(self, state: Any, action: int, rng: np.random.Generator) -> tuple[Any, float, bool]:
        """Step the underlying model; at the root, from a particle drawn with ``rng``."""
        return self.model.step(self._resolve(state, rng), action, rng)

    def observe(self, state: Any) -> Any:
        """Raw observation (the same for every particle, as observations hold no hidden state)."""
        return self.model.observe(self._resolve(state, None))

    def privileged(self, state: Any) -> Any:
        """The model's privileged features of ``state``; at the root, the particles' mean."""
        if state.__class__ is _BeliefRoot:
            return np.mean([self.model.privileged(p) for p in self._particles], axis=0)
        return self.model.privileged(state)

    def action_mask(self, state: Any) -> Any:
        """The model's action mask in ``state`` (observable: the same for every particle)."""
        return self.model.action_mask(self._resolve(state, None))
