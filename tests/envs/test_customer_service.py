"""CustomerServiceEnv: Gymnasium API, dynamics, determinism, planning support, baselines."""

from __future__ import annotations

import dataclasses
import doctest
import math
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import envs  # noqa: F401  (registers the ids)
from envs.customer_service import (
    CustomerServiceConfigError,
    CustomerServiceEnv,
    DialogueState,
    EpisodeFinishedError,
    InvalidActionError,
    RewardConfig,
    TurnKind,
)
from envs.customer_service import env as env_module

ENV_ID = "rlagent/CustomerService-v0"
VARIANTS = [
    {},
    {"split": "val"},
    {"split": "test"},
    {"noise": 0.2},
    {"vague_prob": 1.0, "history": 3},
]


def banking77_variants(shared_data):
    folder = shared_data / "banking77"
    return [
        {"dataset": str(folder / "train.csv"), "split": "train"},
        {"dataset": str(folder / "train.csv"), "split": "val"},
        {"dataset": str(folder / "test.csv"), "split": "test"},
    ]


def rollout(env, actions, seed):
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return observations, rewards, infos


@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda k: repr(k))
def test_gymnasium_check_env(kwargs):
    check_env(gym.make(ENV_ID, **kwargs).unwrapped, skip_render_check=True)


def test_gymnasium_check_env_banking77(shared_data):
    for kwargs in banking77_variants(shared_data):
        check_env(gym.make(ENV_ID, **kwargs).unwrapped, skip_render_check=True)


def test_docstring_example_runs():
    result = doctest.testmod(env_module, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_action_names_and_spaces():
    env = CustomerServiceEnv()
    assert env.action_space.n == len(env.action_names) == len(env.groups) + 3
    assert env.action_names[: len(env.groups)] == tuple(f"resolve_{g}" for g in env.groups)
    assert (env.ASK_CLARIFY, env.APOLOGISE, env.ESCALATE) == (11, 12, 13)
    obs, _ = env.reset(seed=0)
    assert len(obs["dialogue"]) == env.history
    assert obs["dialogue"][-1].startswith("Customer: ")
    assert obs["features"].dtype == np.float32 and obs["features"].shape == (4,)


def test_same_seed_same_actions_same_transcript():
    actions = [11, 12, 3, 11, 12, 0, 13]
    a = CustomerServiceEnv(noise=0.1)
    b = CustomerServiceEnv(noise=0.1)
    rollout(a, actions, seed=123)
    rollout(b, actions, seed=123)
    assert a.get_state() == b.get_state()
    assert a.get_state().transcript == b.get_state().transcript
    rollout(b, actions, seed=124)
    assert a.get_state().transcript != b.get_state().transcript


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.integers(0, 13), min_size=1, max_size=30),
    split=st.sampled_from(["train", "val", "test"]),
    noise=st.sampled_from([0.0, 0.3]),
)
def test_random_action_sequences(seed, actions, split, noise):
    env = gym.make(ENV_ID, split=split, noise=noise)
    base = env.unwrapped
    low, high = base.reward_config.step_bounds()
    obs, info = env.reset(seed=seed)
    intent = info["intent"]
    total, steps, done = 0.0, 0, False
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        steps += 1
        total += reward
        assert low <= reward <= high
        for segment in obs["dialogue"]:
            assert intent not in segment and info["group"] not in segment
        assert set(info["episode_metrics"]) == set(base.METRICS)
        assert base.observation_space.contains(obs)
        if terminated or truncated:
            done = True
            break
    assert steps <= base.max_turns
    if done:
        lo, hi = base.reward_config.return_bounds(base.max_turns)
        assert lo <= total <= hi


def test_episode_ends_within_turn_limit_when_stalling():
    env = CustomerServiceEnv(patience=(30, 30), max_turns=5)
    env.reset(seed=0)
    for turn in range(1, 6):
        _, _, terminated, truncated, info = env.step(env.APOLOGISE)
        assert not terminated
        assert truncated == (turn == 5)
    assert info["outcome"] == "truncated"
    with pytest.raises(EpisodeFinishedError, match=re.escape("call reset() first")):
        env.step(0)


def test_reward_bounds_defaults():
    assert RewardConfig().step_bounds() == (-15.0, 19.0)
    assert RewardConfig().return_bounds(20) == (-110.0, 19.0)


def test_reward_config_validation():
    with pytest.raises(CustomerServiceConfigError, match=re.escape("expected 3 (calm")):
        RewardConfig(mood_scale=(1.0, 0.5))


def test_correct_resolution_scales_with_mood():
    env = CustomerServiceEnv()
    for mood, scale in zip(("calm", "frustrated", "angry"), (1.0, 0.75, 0.5), strict=True):
        env.reset(seed=0, options={"intent": "card_lost", "mood": mood, "vague": False})
        group = env.groups.index("card_security")
        _, reward, terminated, _, info = env.step(group)
        assert terminated and info["success"]
        assert reward == pytest.approx(-1.0 + 20.0 * scale)
        assert info["episode_metrics"]["success_rate"] == 1.0


def test_dynamics_wrong_resolution_apology_clarify_escalate():
    env = CustomerServiceEnv(patience=(10, 10))
    env.reset(seed=1, options={"intent": "card_lost", "mood": "calm", "vague": True})
    assert env.get_state().customer_turns[0][0] == TurnKind.OPEN_VAGUE
    _, reward, terminated, _, info = env.step(env.groups.index("money_transfers"))
    assert (reward, terminated, info["mood"]) == (-5.0, False, "frustrated")
    assert not env.action_masks()[env.groups.index("money_transfers")]
    _, reward, _, _, info = env.step(env.APOLOGISE)
    assert (reward, info["mood"]) == (-1.0, "calm")
    env.step(env.ASK_CLARIFY)  # vague opening: clarification is welcome
    assert env.get_state().customer_turns[-1][0] == TurnKind.ANSWER
    _, _, _, _, info = env.step(env.ASK_CLARIFY)  # needless now: annoys
    assert info["mood"] == "frustrated"
    _, reward, terminated, _, info = env.step(env.ESCALATE)
    assert terminated and reward == -6.0 and info["outcome"] == "escalated"
    assert info["episode_metrics"]["escalated"] == 1.0
    assert info["episode_metrics"]["wrong_resolutions"] == 1.0


def test_angry_customer_leaves_after_wrong_resolution():
    env = CustomerServiceEnv(patience=(10, 10))
    env.reset(seed=2, options={"intent": "card_lost", "mood": "angry"})
    _, reward, terminated, _, info = env.step(env.groups.index("money_transfers"))
    assert terminated and info["outcome"] == "abandoned" and reward == -15.0


def test_customer_leaves_when_patience_runs_out():
    env = CustomerServiceEnv(patience=(3, 3))
    env.reset(seed=3, options={"mood": "calm"})
    rewards = [env.step(env.APOLOGISE)[1] for _ in range(2)]
    _, reward, terminated, _, info = env.step(env.APOLOGISE)
    assert rewards == [-1.0, -1.0] and terminated and reward == -11.0
    assert info["episode_metrics"]["abandoned"] == 1.0
    assert env.get_state().customer_turns[-1][0] == TurnKind.LEAVE


def test_info_has_episode_metrics_every_step():
    env = gym.make(ENV_ID)
    _, info = env.reset(seed=0)
    assert set(info["episode_metrics"]) == set(CustomerServiceEnv.METRICS)
    _, _, _, _, info = env.step(env.unwrapped.APOLOGISE)
    assert info["episode_metrics"]["turns"] == 1.0
    assert CustomerServiceEnv.MAIN_METRIC in CustomerServiceEnv.METRICS


def test_action_masks_only_hide_rejected_groups():
    env = CustomerServiceEnv(patience=(10, 10))
    env.reset(seed=0, options={"intent": "card_lost", "mood": "calm"})
    assert env.action_masks().all()
    env.step(0)
    env.step(4)
    mask = env.action_masks()
    assert mask.dtype == bool and mask.shape == (env.action_space.n,)
    assert np.flatnonzero(~mask).tolist() == [0, 4]


def test_render_ansi_returns_transcript():
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(seed=0)
    env.step(env.unwrapped.ESCALATE)
    text = env.render()
    assert text.splitlines()[0].startswith("Customer: ")
    assert "Agent: Let me pass you to a specialist colleague." in text
    assert text.endswith("[escalated]")


def test_other_render_modes_render_nothing():
    env = CustomerServiceEnv(render_mode="rgb_array")
    env.reset(seed=0)
    with pytest.warns(UserWarning, match=re.escape("renders only 'ansi'")):
        assert env.render() is None


def test_action_masks_reachable_through_wrappers():
    # SB3's make_vec_env asks for render_mode="rgb_array"; VecEnv.env_method uses
    # get_wrapper_attr, as sb3-contrib's get_action_masks does.
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.get_wrapper_attr("action_masks")().shape == (14,)


def test_constructor_errors():
    message = (
        "split='dev' is not a corpus split; expected one of ('train', 'val', 'test'). Pass "
        'split="train" for training, split="val" for evaluations that choose (best model, '
        'tuning, variants) and split="test" for the final figure.'
    )
    with pytest.raises(CustomerServiceConfigError, match=re.escape(message)):
        CustomerServiceEnv(split="dev")
    with pytest.raises(CustomerServiceConfigError, match=re.escape("patience=(5, 2) must")):
        CustomerServiceEnv(patience=(5, 2))
    with pytest.raises(CustomerServiceConfigError, match=re.escape("noise=1.5 must be")):
        CustomerServiceEnv(noise=1.5)
    with pytest.raises(CustomerServiceConfigError, match=re.escape("groups= was given")):
        CustomerServiceEnv(groups={"a": "b"})
    env = CustomerServiceEnv()
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=re.escape("action 14 is outside Discrete(14)")):
        env.step(14)
    with pytest.raises(CustomerServiceConfigError, match=re.escape("reset options ['x']")):
        env.reset(options={"x": 1})


def test_request_entry_holds_the_newest_request_in_a_fixed_slot():
    env = CustomerServiceEnv(patience=(20, 20))
    obs, _ = env.reset(seed=3, options={"vague": True, "mood": "angry"})
    opening = obs["dialogue"][-1]
    assert obs["request"] == opening and env.observation_space["request"].contains(opening)
    for _ in range(3):  # apologies push the opening back, out of the dialogue window
        obs, *_ = env.step(env.APOLOGISE)
        assert obs["request"] == opening
    assert opening not in obs["dialogue"]
    obs, *_ = env.step(env.ASK_CLARIFY)
    answer = obs["dialogue"][-1]
    assert answer != opening and obs["request"] == answer
    wrong = (env.bank.intent_group[env.bank.intent_index[env.get_state().intent]] + 1) % len(
        env.groups
    )
    obs, *_ = env.step(wrong)  # the complaint is the newest turn; the request stays
    assert obs["request"] == answer and obs["dialogue"][-1] != answer
    state = env.get_state()
    other = CustomerServiceEnv(patience=(20, 20))
    other.reset(seed=0)
    other.set_state(state)
    assert other.observe()["request"] == answer


# ---------------------------------------------------------------- planning support
def test_get_state_set_state_round_trip_and_replay():
    env = CustomerServiceEnv(noise=0.1)
    env.reset(seed=5)
    env.step(env.ASK_CLARIFY)
    state = env.get_state()
    obs_at_state = env.observe()
    assert hash(state) == hash(env.get_state()) and state == env.get_state()
    assert {f for f in DialogueState.HIDDEN} <= set(DialogueState.__dataclass_fields__)
    env.np_random = np.random.default_rng(7)
    first = [env.step(a)[:4] for a in (env.APOLOGISE, 2)]
    after = env.get_state()
    other = CustomerServiceEnv(noise=0.1)
    other.reset(seed=99)
    other.set_state(state)
    assert other.get_state() == state
    assert other.observe()["dialogue"] == obs_at_state["dialogue"]
    assert other.observe()["request"] == obs_at_state["request"]
    np.testing.assert_array_equal(other.observe()["features"], obs_at_state["features"])
    other.np_random = np.random.default_rng(7)
    second = [other.step(a)[:4] for a in (other.APOLOGISE, 2)]
    assert other.get_state() == after
    for (o1, r1, t1, u1), (o2, r2, t2, u2) in zip(first, second, strict=True):
        assert o1["dialogue"] == o2["dialogue"] and (r1, t1, u1) == (r2, t2, u2)
        assert o1["request"] == o2["request"]
        np.testing.assert_array_equal(o1["features"], o2["features"])


def test_set_state_errors():
    env = CustomerServiceEnv()
    with pytest.raises(CustomerServiceConfigError, match=re.escape("received dict")):
        env.set_state({})
    state = DialogueState(intent="nope", initial_mood=0, mood=0, patience=4, vague=False)
    with pytest.raises(CustomerServiceConfigError, match=re.escape("intent 'nope' is not")):
        env.set_state(state)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_log_likelihood_true_state_finite_and_wrong_intent_impossible(split):
    env = CustomerServiceEnv(split=split)
    for seed in range(30):
        env.reset(seed=seed, options={"vague": False})
        env.step(env.APOLOGISE)
        state = env.get_state()
        true_ll = env.log_likelihood(state)
        assert math.isfinite(true_ll)
        # Another group's intent cannot have produced a specific request of this intent.
        wrong = next(
            name
            for name in env.intents
            if env.bank.intent_group[env.bank.intent_index[name]]
            != env.bank.intent_group[env.bank.intent_index[state.intent]]
        )
        assert env.log_likelihood(dataclasses.replace(state, intent=wrong)) == -math.inf
        assert env.log_likelihood(dataclasses.replace(state, intent="nope")) == -math.inf


def test_log_likelihood_patience_and_mood_consistency():
    env = CustomerServiceEnv(patience=(4, 8))
    env.reset(seed=0, options={"patience": 6, "mood": "calm"})
    for _ in range(4):
        env.step(env.APOLOGISE)
    state = env.get_state()
    assert math.isfinite(env.log_likelihood(state))
    # A customer with patience 3 would have left already.
    assert env.log_likelihood(dataclasses.replace(state, patience=3)) == -math.inf
    # The recorded mood must follow from the initial mood and the actions.
    assert env.log_likelihood(dataclasses.replace(state, mood=2)) == -math.inf


def test_sample_hidden_particles_recover_true_intent():
    env = CustomerServiceEnv(vague_prob=0.0)
    rng = np.random.default_rng(0)
    hits = 0
    for seed in range(10):
        env.reset(seed=seed)
        env.step(env.ASK_CLARIFY)
        state = env.get_state()
        particles = [env.sample_hidden(state, rng) for _ in range(3000)]
        for p in particles:
            for name in DialogueState.HIDDEN:
                assert hasattr(p, name)
            assert p.transcript == state.transcript and p.actions == state.actions
            assert p.patience > state.turn
        weights = np.array([env.log_likelihood(p) for p in particles])
        assert np.isfinite(weights).any()
        best = particles[int(np.argmax(weights))]
        hits += best.intent == state.intent
    assert hits >= 8


# ---------------------------------------------------------------- baselines
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_baselines_run_and_oracle_is_best(split):
    env = gym.make(ENV_ID, split=split)
    returns = {}
    for name, cls in CustomerServiceEnv.BASELINES.items():
        policy = cls(env)
        total = 0.0
        for episode in range(40):
            obs, _ = env.reset(seed=episode)
            policy.reset(seed=episode)
            done = False
            while not done:
                action = policy.act(obs)
                assert env.unwrapped.action_masks()[action] or name != "random"
                obs, reward, terminated, truncated, info = env.step(action)
                total += reward
                done = terminated or truncated
        returns[name] = total / 40
    assert set(returns) == {"random", "heuristic", "oracle", "labelled"}
    assert returns["oracle"] > returns["heuristic"] > returns["random"]
    # Asking on a vague opening costs a turn and, in one case in three, more patience than
    # guessing right would: the labelled expert is between the oracle and the keyword rule.
    assert returns["oracle"] > returns["labelled"] > returns["heuristic"]


def test_labelled_expert_asks_on_vague_openings_and_resolves_specific_ones():
    env = gym.make(ENV_ID, split="train", vague_prob=0.5)
    expert = CustomerServiceEnv.BASELINES["labelled"](env)
    base = env.unwrapped
    seen = {True: 0, False: 0}
    for episode in range(30):
        obs, _ = env.reset(seed=episode)
        vague = base.get_state().vague
        action = expert.act(obs)
        seen[vague] += 1
        if vague:
            assert action == base.ASK_CLARIFY
        else:
            assert action in (
                base.APOLOGISE,
                base.bank.intent_group[base.bank.intent_index[base.get_state().intent]],
            )
    assert seen[True] and seen[False]
    assert CustomerServiceEnv.EXPERT == "labelled"


@pytest.mark.parametrize("split", ["val", "test"])
def test_oracle_always_succeeds(split):
    env = gym.make(ENV_ID, split=split)
    oracle = CustomerServiceEnv.BASELINES["oracle"](env)
    for episode in range(30):
        obs, _ = env.reset(seed=episode)
        oracle.reset(seed=episode)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(oracle.act(obs))
            done = terminated or truncated
        assert info["success"]


def test_custom_reward_config():
    reward = RewardConfig(success=10.0, mood_scale=(1.0, 1.0, 1.0), turn=0.0)
    env = gym.make(ENV_ID, reward=reward)
    env.reset(seed=0, options={"intent": "card_lost", "mood": "angry"})
    _, r, terminated, _, _ = env.step(env.unwrapped.groups.index("card_security"))
    assert terminated and r == 10.0
    assert reward.step_bounds() == (-14.0, 10.0)


def test_baseline_table_module(capsys):
    from envs.customer_service.baseline_table import evaluate_baseline, main

    result = evaluate_baseline("oracle", {"split": "test"}, episodes=5)
    assert result["success_rate"] == 1.0 and result["mean_turns"] >= 1.0
    main(["--episodes", "2", "--policies", "random"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| data | policy |") and len(out) == 8
    assert [line.split(" | ")[0] for line in out[2:]] == [
        "| built-in train",
        "| built-in val",
        "| built-in test",
        "| built-in, core train",
        "| built-in, core val",
        "| built-in, core test",
    ]
