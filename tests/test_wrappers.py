from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.env_checker import check_env

from rlagent.encoders import load_tokenizer
from rlagent.wrappers import TokenizeText, UnsupportedObservationError


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Shared CPU cores: oversubscribed intra-op threads make tiny models much slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Token ids stay (K, max_length) per text entry; SB3's checker only suggests flattening such shapes.
SHAPE_NOTE = "ignore:Your observation .* has an unconventional shape"

MESSAGES = ["my card was charged twice", "i want a refund", "thanks bye", "where is my order"]


class TextEnv(gym.Env):
    """Bare Text observations."""

    observation_space = spaces.Text(60)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return MESSAGES[int(self.np_random.integers(len(MESSAGES)))], {}

    def step(self, action):
        self.t += 1
        obs = MESSAGES[int(self.np_random.integers(len(MESSAGES)))]
        return obs, float(action), self.t >= 3, False, {}


class DialogueEnv(gym.Env):
    """Dict of a multi-segment transcript, the last message and a numeric Box."""

    observation_space = spaces.Dict(
        {
            "turns": spaces.Tuple([spaces.Text(60)] * 3),
            "message": spaces.Text(60),
            "progress": spaces.Box(0.0, 1.0, (1,), np.float32),
        }
    )
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.turns = []
        return self._obs(), {}

    def _obs(self):
        msg = MESSAGES[int(self.np_random.integers(len(MESSAGES)))]
        padded = (self.turns + ["", "", ""])[:3]
        return {
            "turns": tuple(padded),
            "message": msg,
            "progress": np.array([len(self.turns) / 3], np.float32),
        }

    def step(self, action):
        self.turns.append(f"agent reply {int(action)}")
        return self._obs(), 0.0, len(self.turns) >= 3, False, {}


@pytest.mark.filterwarnings(SHAPE_NOTE)
def test_bare_text_becomes_text_keys_and_passes_check_env():
    env = TokenizeText(TextEnv(), "tiny-random", max_length=16)
    assert set(env.observation_space.spaces) == {"text_input_ids", "text_attention_mask"}
    assert env.observation_space["text_input_ids"].shape == (1, 16)
    assert env.observation_space["text_input_ids"].dtype == np.int64
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    check_env(env, warn=True)


@pytest.mark.filterwarnings(SHAPE_NOTE)
def test_dict_with_segments_and_box():
    env = TokenizeText(DialogueEnv(), "tiny-random", max_length=12)
    keys = set(env.observation_space.spaces)
    assert keys == {
        "turns_input_ids",
        "turns_attention_mask",
        "message_input_ids",
        "message_attention_mask",
        "progress",
    }
    assert env.observation_space["turns_input_ids"].shape == (3, 12)
    assert env.observation_space["progress"] == DialogueEnv.observation_space["progress"]
    obs, _ = env.reset(seed=1)
    # No turns yet: every transcript segment is absent (all-zero rows).
    assert not obs["turns_attention_mask"].any() and not obs["turns_input_ids"].any()
    obs, *_ = env.step(2)
    assert obs["turns_attention_mask"][0].any() and not obs["turns_attention_mask"][1:].any()
    np.testing.assert_array_equal(obs["progress"], np.array([1 / 3], np.float32))
    check_env(TokenizeText(DialogueEnv(), "tiny-random", max_length=12), warn=True)


def test_ids_match_the_tokenizer_and_truncate():
    tok = load_tokenizer("tiny-random")
    env = TokenizeText(TextEnv(), tok, max_length=8)
    raw = "where is my order it was due last week"
    obs = env.observation(raw)
    expected = tok(raw, max_length=8, truncation=True, padding="max_length")
    np.testing.assert_array_equal(obs["text_input_ids"][0], expected["input_ids"])
    np.testing.assert_array_equal(obs["text_attention_mask"][0], expected["attention_mask"])
    assert obs["text_attention_mask"][0].all()  # truncated to max_length
    assert obs["text_input_ids"][0, -1] == tok.sep_token_id


def test_tuple_of_text_at_top_level():
    class Pair(TextEnv):
        observation_space = spaces.Tuple([spaces.Text(30), spaces.Text(30)])

        def reset(self, *, seed=None, options=None):
            gym.Env.reset(self, seed=seed)
            return ("hello", ""), {}

    env = TokenizeText(Pair(), "tiny-random", max_length=6)
    obs, _ = env.reset(seed=0)
    assert obs["text_input_ids"].shape == (2, 6)
    assert obs["text_attention_mask"][0].any() and not obs["text_attention_mask"][1].any()


def test_token_cache_is_bounded_and_consistent():
    env = TokenizeText(TextEnv(), "tiny-random", max_length=16, cache_size=2)
    first = [env.observation(m)["text_input_ids"].copy() for m in MESSAGES]
    again = [env.observation(m)["text_input_ids"] for m in MESSAGES]
    assert len(env._cache) == 2
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unsupported_spaces_are_explained():
    class Bad(TextEnv):
        observation_space = spaces.Dict({"text": spaces.Text(10), "mood": spaces.Discrete(3)})

    with pytest.raises(
        UnsupportedObservationError,
        match=re.escape("Observation entry 'mood' is Discrete(3); TokenizeText supports Text"),
    ):
        TokenizeText(Bad(), "tiny-random")

    class Worse(TextEnv):
        observation_space = spaces.Discrete(3)

    with pytest.raises(
        UnsupportedObservationError,
        match=re.escape("Observation space Discrete(3) is not supported"),
    ):
        TokenizeText(Worse(), "tiny-random")

    with pytest.raises(ValueError, match=re.escape("max_length must be >= 2")):
        TokenizeText(TextEnv(), "tiny-random", max_length=1)
