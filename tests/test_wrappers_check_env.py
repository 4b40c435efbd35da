"""Gymnasium's ``check_env``, render and close checks included, on every bundled env wrapped."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from rlagent.wrappers import (
    ActionMaskError,
    ActionMaskObservation,
    ExpectedReward,
    PotentialShaping,
    PrivilegedObservation,
    RewardShapingError,
    TokenizeText,
)

CS, REC = "rlagent/CustomerService-v0", "rlagent/Recommendation-v0"


def tokenize(env: gym.Env) -> gym.Env:
    return TokenizeText(env, "tiny-random", max_length=16)


# Every wrapper each env supports, alone and stacked as training stacks them.
WRAPPED = {
    CS: {
        "TokenizeText": tokenize,
        "PrivilegedObservation": PrivilegedObservation,
        "ActionMaskObservation": ActionMaskObservation,
        "PotentialShaping": PotentialShaping,
        "stacked": lambda e: PotentialShaping(
            tokenize(ActionMaskObservation(PrivilegedObservation(e)))
        ),
    },
    REC: {
        "TokenizeText": tokenize,
        "PrivilegedObservation": PrivilegedObservation,
        "PotentialShaping": PotentialShaping,
        "ExpectedReward": ExpectedReward,
        "ExpectedReward(shaped)": lambda e: ExpectedReward(e, shaped=True),
        "stacked": lambda e: ExpectedReward(tokenize(PrivilegedObservation(e)), shaped=True),
    },
}
CASES = [(env_id, name) for env_id, wrappers in WRAPPED.items() for name in wrappers]
CASE_IDS = [f"{env_id.split('/')[1]}-{name}" for env_id, name in CASES]

# check_env warns that a wrapped env is not its unwrapped self (wrapping is the point here).
# RecommendationEnv.privileged_space is Box(0, inf): the remaining budget over the initial one
# has no upper bound (a click on an item of quality above 1 / refund_rate refunds more than it
# costs), and a finite bound would change the space that saved models were trained with.
ALLOWED_WARNINGS = ("is different from the unwrapped version",)
UNBOUNDED_PRIVILEGED = "A Box observation space maximum value is infinity"


@pytest.mark.parametrize(("env_id", "name"), CASES, ids=CASE_IDS)
def test_check_env_passes_on_each_wrapper(env_id, name):
    env = WRAPPED[env_id][name](gym.make(env_id))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    allowed = ALLOWED_WARNINGS
    if env_id == REC and ("Privileged" in name or name == "stacked"):
        allowed += (UNBOUNDED_PRIVILEGED,)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)]
    assert unexpected == []
    # The spec records the wrapper, so gym.make rebuilds the same stack.
    again = env.spec.make()
    assert again.observation_space == env.observation_space
    assert [type(w).__name__ for w in _stack(again)] == [type(w).__name__ for w in _stack(env)]


def _stack(env: gym.Env) -> list[gym.Env]:
    out = [env]
    while isinstance(out[-1], gym.Wrapper):
        out.append(out[-1].env)
    return out


def test_wrappers_an_env_cannot_have_say_why():
    with pytest.raises(RewardShapingError, match="has no expected_reward"):
        ExpectedReward(gym.make(CS))
    with pytest.raises(ActionMaskError, match="needs a Discrete action space"):
        ActionMaskObservation(gym.make(REC))
