"""Live customer-service chats: the env's own observations, from a real customer's text."""

from __future__ import annotations

import re

import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.customer_service import CustomerServiceEnv, LiveDialogue, LiveInputError, TurnKind
from envs.customer_service._rendering import CUSTOMER_PREFIX

ROWS = {
    "card_arrival": ["my card has not arrived yet", "still waiting for my new card"],
    "card_linking": ["how do i link my card to the app", "add my card to my account"],
    "transfer_fee": ["why was i charged for a transfer", "what is the fee on transfers"],
    "transfer_timing": ["my transfer has not gone through", "بطاقتي لم تصل بعد يا صديقي"],
}
GROUPS = {
    "card_arrival": "cards",
    "card_linking": "cards",
    "transfer_fee": "transfers",
    "transfer_timing": "transfers",
}


@pytest.fixture
def dataset(tmp_path):
    lines = ["text,category"] + [f"{t},{c}" for c, texts in ROWS.items() for t in texts]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_same(live: LiveDialogue, env: CustomerServiceEnv, obs: dict) -> None:
    got = live.observation()
    assert set(got) == set(obs)
    assert got["dialogue"] == obs["dialogue"]
    assert got["request"] == obs["request"]
    assert got["features"].dtype == obs["features"].dtype == np.float32
    np.testing.assert_array_equal(got["features"], obs["features"])
    np.testing.assert_array_equal(live.action_masks(), env.action_masks())
    assert live.action_masks().dtype == env.action_masks().dtype
    assert env.observation_space.contains(got)


def newest_customer_text(obs: dict) -> str:
    segment = obs["dialogue"][-1]
    assert segment.startswith(CUSTOMER_PREFIX)
    return segment[len(CUSTOMER_PREFIX) :]


def replay(env: CustomerServiceEnv, seed: int) -> tuple[int, str]:
    """One seeded episode with random allowed actions, mirrored live: (length, outcome)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    live = env.live_session()
    live.customer(newest_customer_text(obs))
    assert_same(live, env, obs)
    steps = 0
    while True:
        # Mostly allowed actions; now and then a masked one, which the env also accepts.
        allowed = np.flatnonzero(env.action_masks())
        action = int(rng.choice(allowed if rng.random() < 0.9 else len(env.action_names)))
        assert live.whose_turn == "agent"
        assert live.act(action) == env.agent_phrases[action]
        obs, _, terminated, truncated, info = env.step(action)
        steps += 1
        assert live.turn == info["turns"]
        assert live.transcript == list(env.get_state().transcript[:-1])
        if terminated or truncated:
            if info["outcome"] in ("escalated", "truncated"):
                assert live.ended and live.done and live.whose_turn is None
            elif info["outcome"] == "success":
                assert live.done and live.ended == (live.turn == env.max_turns)
            return steps, info["outcome"]
        assert live.done == (action < len(env.groups))
        live.customer(newest_customer_text(obs))
        assert not live.done
        assert_same(live, env, obs)


CONFIGS = [
    {},
    {"corpus": "core", "noise": 0.3},
    {"vague_prob": 1.0, "patience": (8, 12), "history": 2},
    {"vague_prob": 0.0, "max_length": 40, "noise": 0.1, "patience": (6, 10)},
    {"split": "test", "mood_probs": (1.0, 0.0, 0.0), "max_turns": 3, "patience": (9, 9)},
]


@pytest.mark.parametrize("kwargs", CONFIGS)
def test_live_observations_equal_the_env_s_at_every_step(kwargs):
    env = CustomerServiceEnv(**kwargs)
    lengths, outcomes = zip(*(replay(env, seed) for seed in range(40)), strict=True)
    assert max(lengths) >= 3
    assert {"success", "escalated"} <= set(outcomes)
    if env.max_turns == 3:
        assert "truncated" in outcomes


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_live_observations_equal_the_env_s_with_a_dataset(dataset, noise):
    env = CustomerServiceEnv(dataset=dataset, groups=GROUPS, val_fraction=0.0, noise=noise)
    for seed in range(40):
        replay(env, seed)


def test_a_dataset_s_characters_are_accepted_others_named(dataset):
    env = CustomerServiceEnv(dataset=dataset, groups=GROUPS, val_fraction=0.0)
    live = env.live_session()
    live.customer("بطاقتي لم تصل")
    ascii_only = CustomerServiceEnv().live_session()
    message = (
        "The customer text holds characters this env cannot observe: 'ب', 'ط', 'ا', 'ق', 'ت' "
        "and 4 more; remove them or map the text into the env's characters first"
    )
    with pytest.raises(LiveInputError, match=re.escape(message)):
        ascii_only.customer("بطاقتي لم تصل")


def test_text_is_cut_as_the_env_cuts_it():
    env = CustomerServiceEnv(max_length=40)
    live = env.live_session()
    live.customer("x" * 100)
    assert live.transcript == ["Customer: " + "x" * 30]
    assert live.observation()["request"] == "Customer: " + "x" * 30


def test_requests_replies_and_a_rejected_resolution():
    env = CustomerServiceEnv()
    live = env.live_session()
    ask, sorry = live.action_names.index("ask_clarify"), live.action_names.index("apologise")
    live.customer("there is a problem with my card")
    assert live.act(ask) == "Could you tell me a bit more about the problem?"
    live.customer("it never arrived")
    assert live.observation()["request"] == "Customer: it never arrived"
    assert live.act(sorry) == "I'm really sorry about the trouble."
    live.customer("ok thanks")
    assert live.observation()["request"] == "Customer: it never arrived"
    reply = live.act(0)
    assert reply == env.agent_phrases[0] and live.done and not live.ended
    live.customer("that did not help at all")  # the resolution was wrong
    assert not live.done and not live.action_masks()[0] and live.action_masks().sum() == 13
    np.testing.assert_allclose(live.observation()["features"], np.array([3, 1, 1, 1]) / 20)
    assert [k for k, *_ in live.state().customer_turns] == [
        TurnKind.OPEN_SPECIFIC,
        TurnKind.ANSWER,
        TurnKind.ACK,
        TurnKind.COMPLAINT,
    ]


def test_live_state_restores_the_same_observation_in_the_env():
    env = CustomerServiceEnv()
    live = env.live_session()
    live.customer("my transfer is late")
    live.act(live.action_names.index("ask_clarify"))
    live.customer("i sent money to my friend two days ago")
    live.act(2)
    live.customer("no, wrong team")
    state = live.state()
    assert (state.intent, state.mood, state.patience, state.vague) == (None, None, None, None)
    posterior = np.full(5 + len(env.groups), 0.5)
    env.set_state(env.sample_hidden(state, np.random.default_rng(0), posterior=posterior))
    observed = env.observe()
    expected = live.observation()
    assert observed["dialogue"] == expected["dialogue"]
    assert observed["request"] == expected["request"]
    np.testing.assert_array_equal(observed["features"], expected["features"])
    np.testing.assert_array_equal(env.action_masks(), live.action_masks())


def test_escalation_and_the_turn_limit_end_the_chat_for_good():
    env = CustomerServiceEnv(max_turns=2)
    live = env.live_session()
    live.customer("hello")
    live.act(live.action_names.index("escalate"))
    assert live.done and live.ended and live.state().outcome == "escalated"
    message = (
        "The session has ended for good (the agent escalated to a specialist); start a new "
        "session for a new conversation."
    )
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.customer("wait")
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.act(0)
    live = env.live_session()
    live.customer("hello")
    live.act(live.action_names.index("apologise"))
    live.customer("fine")
    live.act(live.action_names.index("apologise"))
    assert live.ended and live.whose_turn is None
    with pytest.raises(LiveInputError, match=re.escape("it reached the env's max_turns=2")):
        live.customer("hello?")


def test_turn_order_is_enforced():
    live = CustomerServiceEnv().live_session()
    assert live.whose_turn == "customer"
    message = "The session has no customer text yet; call customer(text) first"
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.observation()
    message = "The customer has not written yet; call customer(text) first (the customer opens"
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.act(0)
    live.customer("hi")
    message = (
        "It is the agent's turn: the customer's last message has no reply yet; call "
        "act(action) before the customer writes again."
    )
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.customer("hello??")
    live.act(0)
    message = (
        "It is the customer's turn: the agent already replied; call customer(text) before the "
        "agent acts again."
    )
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.act(1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The customer text is empty; send some text."),
        ("  \t", "The customer text is empty (only whitespace); send some text."),
        (None, "The customer text must be a string, got NoneType."),
        ("two\nlines", "holds characters this env cannot observe: U+000A; remove them"),
        ("café ☕", "holds characters this env cannot observe: 'é', '☕'; remove them"),
    ],
)
def test_bad_customer_text_is_refused(text, message):
    live = CustomerServiceEnv().live_session()
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.customer(text)
    assert live.transcript == []


@pytest.mark.parametrize("action", [-1, 14, 1.0, True, "0"])
def test_bad_actions_are_refused(action):
    live = CustomerServiceEnv().live_session()
    live.customer("hi")
    message = f"action {action!r} is not one of this env's 14 actions; expected an int in [0, 13]"
    with pytest.raises(LiveInputError, match=re.escape(message)):
        live.act(action)
    assert live.turn == 0 and live.act(np.int64(13)) == "Let me pass you to a specialist colleague."


def test_live_input_error_is_a_value_error_and_exported():
    import rlagent.envs

    assert issubclass(LiveInputError, ValueError)
    assert rlagent.envs.LiveInputError is LiveInputError
    assert rlagent.envs.LiveDialogue is LiveDialogue
    assert isinstance(CustomerServiceEnv().live_session(), LiveDialogue)
