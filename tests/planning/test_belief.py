import dataclasses
import math
import re
from typing import ClassVar

import numpy as np
import pytest

from rlagent.planning import ParticleBelief, PlanningStateError


@dataclasses.dataclass(frozen=True)
class State:
    HIDDEN: ClassVar[tuple[str, ...]] = ("secret",)
    observed: int
    secret: int | None = None


class RareSecretEnv:
    """The observed value is explained by one secret out of ``n`` (prior uniform)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def sample_hidden(self, state, rng):
        return dataclasses.replace(state, secret=int(rng.integers(self.n)))

    def log_likelihood(self, state):
        return 0.0 if state.secret == state.observed else -math.inf


def test_rare_explanations_are_found_by_drawing_more_batches():
    belief = ParticleBelief(RareSecretEnv(2000), num_particles=8, num_proposals=16)
    particles = belief.update(State(observed=1234), np.random.default_rng(0))
    assert {p.secret for p in particles} == {1234}


def test_impossible_history_is_a_clear_error():
    belief = ParticleBelief(RareSecretEnv(10), num_particles=4, num_proposals=8, max_proposals=32)
    with pytest.raises(PlanningStateError, match=re.escape("all 32 prior draws")):
        belief.update(State(observed=99), np.random.default_rng(0))
