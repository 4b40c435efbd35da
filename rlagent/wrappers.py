"""Gymnasium wrappers that turn text observations into token-id Dicts that SB3 accepts.

:class:`TokenizeText` works on any Gymnasium env whose observation space is

* a ``spaces.Text`` (becomes ``text_input_ids`` / ``text_attention_mask``),
* a ``spaces.Tuple`` of ``Text`` (``K`` segments, same keys), or
* a ``spaces.Dict`` holding ``Text`` entries, ``Tuple``-of-``Text`` entries and ``Box`` entries.

Every text entry ``key`` becomes ``f"{key}_input_ids"`` and ``f"{key}_attention_mask"``, two int64
Boxes of shape ``(K, max_length)`` (``K = 1`` for a single Text); Boxes pass through unchanged.
An empty string is an absent segment: its ids and mask rows are all zero.

:class:`PrivilegedObservation` adds the env's hidden ``privileged_features()`` to a Dict
observation, for a critic that trains beside the policy (an asymmetric actor-critic).
:class:`ActionMaskObservation` adds the env's ``action_masks()`` (which actions are allowed
now) as an observation entry, for a policy that masks its action distribution with it.
:class:`PotentialShaping` adds the change of the env's hidden ``shaping_potential()`` to every
reward, turning a reward that arrives late (a longer session) into one that arrives at once;
:class:`ExpectedReward` replaces each reward by its average over the env's possible responses.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "ACTION_MASK_KEY",
    "ActionMaskError",
    "ActionMaskObservation",
    "PRIVILEGED_KEY",
    "ExpectedReward",
    "PotentialShaping",
    "PrivilegedFeaturesError",
    "RewardShapingError",
    "PrivilegedObservation",
    "TokenizeText",
    "UnsupportedObservationError",
]

#: Observation entry that :class:`PrivilegedObservation` adds.
PRIVILEGED_KEY = "privileged"
#: Observation entry that :class:`ActionMaskObservation` adds.
ACTION_MASK_KEY = "action_mask"

_DEFAULT_KEY = "text"


class UnsupportedObservationError(TypeError):
    """An observation space holds something :class:`TokenizeText` cannot turn into token ids."""


class PrivilegedFeaturesError(TypeError):
    """An env cannot give privileged features, or its observation cannot carry them."""


class ActionMaskError(TypeError):
    """An env that cannot provide action masks, or a mask of the wrong size."""


class RewardShapingError(TypeError):
    """The env offers no ``shaping_potential()`` or ``expected_reward()`` for a reward wrapper."""


def _segments(space: spaces.Space) -> int | None:
    """Number of text segments of a Text / Tuple-of-Text space, ``None`` for anything else."""
    if isinstance(space, spaces.Text):
        return 1
    if (
        isinstance(space, spaces.Tuple)
        and len(space.spaces) > 0
        and all(isinstance(s, spaces.Text) for s in space.spaces)
    ):
        return len(space.spaces)
    return None


class TokenizeText(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Tokenize the text in observations with a Hugging Face tokenizer.

    Token ids of each distinct string are kept in an LRU cache, so a string seen before costs a
    dictionary lookup.

    Args:
        env: Env with a Text, Tuple-of-Text or Dict observation space (see module docstring).
        tokenizer_or_encoder_name: A tokenizer (callable like a Hugging Face tokenizer), an
            :class:`rlagent.encoders.Encoder`, or an encoder name/folder for
            :func:`rlagent.encoders.load_tokenizer` (``"default"``, ``"tiny-random"``, ...).
        max_length: Tokens per segment, ``[CLS]`` and ``[SEP]`` included; longer text is truncated.
        cache_size: Distinct strings whose token ids are kept.

    Raises:
        UnsupportedObservationError: For any other observation space.

    Example:
        >>> import gymnasium as gym
        >>> from gymnasium import spaces
        >>> class Echo(gym.Env):
        ...     observation_space = spaces.Text(20)
        ...     action_space = spaces.Discrete(2)
        ...     def reset(self, *, seed=None, options=None):
        ...         super().reset(seed=seed)
        ...         return "hello", {}
        ...     def step(self, action):
        ...         return "bye", 0.0, True, False, {}
        >>> env = TokenizeText(Echo(), "tiny-random", max_length=8)
        >>> obs, _ = env.reset(seed=0)
        >>> sorted(obs), obs["text_input_ids"].shape
        (['text_attention_mask', 'text_input_ids'], (1, 8))
    """

    def __init__(
        self,
        env: gym.Env,
        tokenizer_or_encoder_name: Any = "default",
        *,
        max_length: int = 64,
        cache_size: int = 65_536,
    ) -> None:
        tok = tokenizer_or_encoder_name
        recorded = tok.name if hasattr(tok, "tokenizer") and hasattr(tok, "checksum") else tok
        # Recorded (for env.spec, gymnasium's check_env) by name where there is one, so that
        # copying the spec never copies a model; a tokenizer object is recorded as is.
        gym.utils.RecordConstructorArgs.__init__(
            self,
            tokenizer_or_encoder_name=recorded,
            max_length=max_length,
            cache_size=cache_size,
            _disable_deepcopy=True,
        )
        gym.ObservationWrapper.__init__(self, env)
        if int(max_length) < 2:
            raise ValueError(
                f"max_length must be >= 2 (room for [CLS] and [SEP]), got {max_length!r}."
            )
        self.max_length = int(max_length)
        self.cache_size = int(cache_size)
        self.encoder_name: str | None = None
        if isinstance(tok, str):
            from rlagent.encoders.loading import load_tokenizer

            self.encoder_name = tok
            tok = load_tokenizer(tok)
        elif hasattr(tok, "tokenizer") and hasattr(tok, "checksum"):
            self.encoder_name = tok.name
            tok = tok.tokenizer
        if not callable(tok):
            raise TypeError(
                "tokenizer_or_encoder_name must be a tokenizer, an rlagent Encoder or an encoder "
                f"name, got {type(tokenizer_or_encoder_name).__name__}."
            )
        self.tokenizer = tok
        self.vocab_size = int(len(tok))
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._layout, self.observation_space = self._build_space(env.observation_space)

    # ------------------------------------------------------------------ spaces
    def _build_space(
        self, space: spaces.Space
    ) -> tuple[list[tuple[str, str, int | None]], spaces.Dict]:
        """Layout ``(out_key_base, in_key, segments or None for Box)`` and the new space."""
        if _segments(space) is not None:
            layout = [(_DEFAULT_KEY, None, _segments(space))]
            entries = {_DEFAULT_KEY: space}
        elif isinstance(space, spaces.Dict):
            layout = []
            entries = dict(space.spaces)
            for key, sub in entries.items():
                count = _segments(sub)
                if count is None and not isinstance(sub, spaces.Box):
                    raise UnsupportedObservationError(
                        f"Observation entry {key!r} is {sub!r}; TokenizeText supports Text, "
                        "Tuple of Text (one Text per segment) and Box entries. Convert it to one "
                        "of these (e.g. a Discrete value to a one-hot Box) in your own wrapper."
                    )
                layout.append((key, key, count))
        else:
            raise UnsupportedObservationError(
                f"Observation space {space!r} is not supported; TokenizeText supports Text, "
                "Tuple of Text, and Dict holding Text, Tuple-of-Text and Box entries."
            )
        out: dict[str, spaces.Space] = {}
        shape_high = max(self.vocab_size - 1, 1)
        for base, in_key, count in layout:
            if count is None:
                out[base] = entries[in_key]
                continue
            shape = (count, self.max_length)
            ids_key, mask_key = f"{base}_input_ids", f"{base}_attention_mask"
            for new in (ids_key, mask_key):
                if new in entries and new != base:
                    raise UnsupportedObservationError(
                        f"Observation entry {base!r} would become {new!r}, which already exists; "
                        "rename one of the entries."
                    )
            out[ids_key] = spaces.Box(0, shape_high, shape=shape, dtype=np.int64)
            out[mask_key] = spaces.Box(0, 1, shape=shape, dtype=np.int64)
        return layout, spaces.Dict(out)

    # ------------------------------------------------------------------ tokenizing
    def _encode_missing(self, texts: list[str]) -> None:
        enc = self.tokenizer(
            texts, max_length=self.max_length, truncation=True, padding="max_length"
        )
        for text, ids, mask in zip(texts, enc["input_ids"], enc["attention_mask"], strict=True):
            pair = (np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64))
            pair[0].setflags(write=False)
            pair[1].setflags(write=False)
            self._cache[text] = pair
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def tokenize(self, texts: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention masks of ``K`` segments.

        Args:
            texts: ``K`` strings; an empty string is an absent segment.

        Returns:
            ``(input_ids, attention_mask)``, each int64 of shape ``(K, max_length)``.
        """
        count = len(texts)
        ids = np.zeros((count, self.max_length), dtype=np.int64)
        mask = np.zeros((count, self.max_length), dtype=np.int64)
        cache = self._cache
        missing = [t for t in dict.fromkeys(texts) if t and t not in cache]
        if missing:
            self._encode_missing(missing)
        for row, text in enumerate(texts):
            if not text:
                continue
            pair = cache.get(text)
            if pair is None:  # evicted by a tiny cache while encoding this very batch
                self._encode_missing([text])
                pair = cache[text]
            else:
                cache.move_to_end(text)
            ids[row] = pair[0]
            mask[row] = pair[1]
        return ids, mask

    def observation(self, observation: Any) -> dict[str, Any]:
        """Turn one raw observation into the token-id Dict (usable on its own, without stepping)."""
        out: dict[str, Any] = {}
        for base, in_key, count in self._layout:
            value = observation if in_key is None else observation[in_key]
            if count is None:
                out[base] = value
                continue
            texts = (value,) if isinstance(value, str) else tuple(value)
            if len(texts) != count:
                raise ValueError(
                    f"Observation entry {base!r} holds {len(texts)} segments, expected {count}."
                )
            ids, mask = self.tokenize(texts)
            out[f"{base}_input_ids"] = ids
            out[f"{base}_attention_mask"] = mask
        return out


def _with_entry(env: gym.Env, key: str, space: spaces.Space, error: type[Exception]) -> spaces.Dict:
    """``env``'s Dict observation space with ``key: space`` added, or ``error`` saying why not."""
    if not isinstance(env.observation_space, spaces.Dict):
        raise error(
            f"Adding the {key!r} entry needs a Dict observation space, got "
            f"{type(env.observation_space).__name__}."
        )
    if key in env.observation_space.spaces:
        raise error(f"The observation already has an entry named {key!r}; rename it.")
    return spaces.Dict({**env.observation_space.spaces, key: space})


class PrivilegedObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Add the env's hidden ``privileged_features()`` to a Dict observation as ``"privileged"``.

    For an asymmetric actor-critic: a policy built with ``privileged_critic=True``
    (:func:`rlagent.make_ppo`) feeds this entry to its critic only, so the critic can value
    states by what the agent cannot see (a user's remaining time) while every action is
    chosen from the observation alone. The unwrapped env provides
    ``privileged_features(state=None) -> np.ndarray`` and ``privileged_space`` (a ``Box``).
    The entry is hidden state: never feed it to anything that acts.

    Args:
        env: An env with a ``Dict`` observation space whose unwrapped env has
            ``privileged_features`` and ``privileged_space``.

    Raises:
        PrivilegedFeaturesError: When the env has no privileged features, its observation space
            is not a ``Dict``, or it already has a ``"privileged"`` entry.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        base = env.unwrapped
        features = getattr(base, "privileged_features", None)
        space = getattr(base, "privileged_space", None)
        if not callable(features) or not isinstance(space, spaces.Box):
            raise PrivilegedFeaturesError(
                f"{type(base).__name__} has no privileged_features() method and "
                "privileged_space Box, so a privileged critic has nothing to read; add both to "
                "the env (see RecommendationEnv) or train without privileged_critic."
            )
        self._features = features
        self.observation_space = _with_entry(env, PRIVILEGED_KEY, space, PrivilegedFeaturesError)

    def observation(self, observation: Any) -> dict[str, Any]:
        """``observation`` with the current privileged features added."""
        return {**observation, PRIVILEGED_KEY: self._features()}


class ActionMaskObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Add the env's ``action_masks()`` to a Dict observation as ``"action_mask"``.

    The mask is what the agent may do now (for the customer-service env: every action but the
    groups the customer has already turned down), which a real agent knows, so unlike
    ``"privileged"`` the entry is an ordinary observation. A policy built with
    ``action_masks=True`` (:func:`rlagent.make_ppo`) gives masked actions zero probability,
    like sb3-contrib's ``MaskablePPO``, and its layers read the entry as numeric features.

    Args:
        env: An env with a ``Dict`` observation space, a ``Discrete`` action space and an
            ``action_masks()`` method (found through its wrappers) returning one boolean per
            action.

    Raises:
        ActionMaskError: When the env has no ``action_masks()``, its action space is not
            ``Discrete``, its observation space is not a ``Dict``, or it already has an
            ``"action_mask"`` entry; and, at a step, when a mask has the wrong size or no
            allowed action.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise ActionMaskError(
                f"ActionMaskObservation needs a Discrete action space, got {env.action_space}."
            )
        try:
            masks = env.get_wrapper_attr("action_masks")
        except AttributeError:
            masks = None
        if not callable(masks):
            raise ActionMaskError(
                f"{type(env.unwrapped).__name__} has no action_masks() method, so there is no "
                "mask to observe; add one (see CustomerServiceEnv) or train without "
                "action_masks."
            )
        self._masks = masks
        self._n = int(env.action_space.n)
        mask_space = spaces.Box(0.0, 1.0, (self._n,), np.float32)
        self.observation_space = _with_entry(env, ACTION_MASK_KEY, mask_space, ActionMaskError)

    def observation(self, observation: Any) -> dict[str, Any]:
        """``observation`` with the current action mask added (1.0 allowed, 0.0 masked)."""
        mask = np.asarray(self._masks(), dtype=np.float32).reshape(-1)
        if mask.shape != (self._n,) or not mask.any():
            raise ActionMaskError(
                f"action_masks() returned {mask.tolist()}; expected {self._n} values with at "
                "least one allowed action."
            )
        return {**observation, ACTION_MASK_KEY: mask}


def _reward_method(env: gym.Env, name: str, setting: str) -> Any:
    """The unwrapped env's method ``name``, or :class:`RewardShapingError` naming ``setting``."""
    method = getattr(env.unwrapped, name, None)
    if not callable(method):
        raise RewardShapingError(
            f"{type(env.unwrapped).__name__} has no {name}() method, so a reward wrapper cannot "
            f"use it; add one (see RecommendationEnv) or train without {setting}."
        )
    return method


class PotentialShaping(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Potential-based reward shaping with the env's hidden ``shaping_potential()``.

    Each reward becomes ``r + phi(s') - phi(s)``, with ``phi(s') = 0`` when the episode
    terminates (not when it is truncated). The shaping is undiscounted, so an episode's
    shaped return is its return minus ``phi`` of its start state: under the undiscounted
    return every policy keeps its rank, while a reward that would arrive only at the end of
    the episode arrives at the step that earned it. In :class:`RecommendationEnv` the potential
    is the user's remaining time: a click's shaped reward is the time its quality refunds
    (minus the minutes it drains, which the reward gives back), so PPO's discount no longer
    hides what a good item is worth.

    The potential reads hidden state: use it for training only; evaluate on the env's own
    rewards (``Monitor`` inside this wrapper still records them).

    Args:
        env: An env whose unwrapped env has ``shaping_potential(state=None) -> float``.

    Raises:
        RewardShapingError: When the env has no ``shaping_potential``.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._potential = _reward_method(env, "shaping_potential", "reward_shaping")
        self._phi = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and record the start state's potential."""
        observation, info = self.env.reset(**kwargs)
        self._phi = float(self._potential())
        return observation, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env; the reward gains ``phi(s') - phi(s)``."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        phi = 0.0 if terminated else float(self._potential())
        shaped = float(reward) + phi - self._phi
        self._phi = phi
        return observation, shaped, terminated, truncated, info


class ExpectedReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replace each reward by its expectation over the env's response to the action.

    Before each step the wrapper asks the unwrapped env for
    ``expected_reward(action, shaped=shaped)``, the reward averaged over everything the step
    could sample (which item a user clicks) given the current, hidden, state, and returns it
    instead of the sampled reward. Every policy keeps its expected return (the expectation of a
    step's reward given the state and action is unchanged), while the noise of the sampled
    outcome leaves the learning signal: a Rao-Blackwellised reward. The episode still follows
    the sampled outcome. With ``shaped=True`` the expectation is of the potential-shaped reward
    of :class:`PotentialShaping`.

    It reads hidden state: use it for training only (``Monitor`` inside it keeps the env's own
    rewards for statistics).

    Args:
        env: An env whose unwrapped env has ``expected_reward(action, state=None, *, shaped)``.
        shaped: Average the potential-shaped reward instead of the reward.

    Raises:
        RewardShapingError: When the env has no ``expected_reward``.
    """

    def __init__(self, env: gym.Env, *, shaped: bool = False) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, shaped=shaped)
        gym.Wrapper.__init__(self, env)
        self._expected = _reward_method(env, "expected_reward", "expected_rewards")
        self.shaped = bool(shaped)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env; the reward is the expected reward of ``action`` before the step."""
        expected = float(self._expected(action, shaped=self.shaped))
        observation, _, terminated, truncated, info = self.env.step(action)
        return observation, expected, terminated, truncated, info
