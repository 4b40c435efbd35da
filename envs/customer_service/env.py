"""The customer-service dialogue environment: simulated customers with hidden needs and moods."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs._text import text_space
from envs.customer_service import _corpus_data as data
from envs.customer_service.baselines import HeuristicPolicy, OraclePolicy, RandomPolicy
from envs.customer_service.config import RewardConfig
from envs.customer_service.corpus import MOODS, UtteranceBank, builtin_bank, check_split
from envs.customer_service.dataset import dataset_bank
from envs.customer_service.errors import (
    CustomerServiceConfigError,
    EpisodeFinishedError,
    InvalidActionError,
)

__all__ = ["CustomerServiceEnv", "DialogueState", "TurnKind"]

_ANGRY = len(MOODS) - 1
_NEG_INF = -math.inf


class TurnKind:
    """What a customer turn is; ``DialogueState.customer_turns[i][0]`` holds one of these."""

    OPEN_VAGUE = 0  #: vague opening ("there's a problem with my card")
    OPEN_SPECIFIC = 1  #: specific opening
    ANSWER = 2  #: specific answer to a clarification question
    COMPLAINT = 3  #: reply to a wrong resolution
    ACK = 4  #: reply to an apology
    LEAVE = 5  #: the customer leaves
    THANKS = 6  #: reply to a correct resolution
    HANDOFF = 7  #: reply to an escalation
    #: Kinds that are requests (opening or answer) and so carry an opener phrase.
    REQUESTS = (OPEN_VAGUE, OPEN_SPECIFIC, ANSWER)
    #: Kinds that carry a closing mood phrase besides requests.
    MOODY_REPLIES = (COMPLAINT, ACK, LEAVE)


@dataclass(frozen=True)
class DialogueState:
    """Everything needed to continue an episode exactly (except the random generator).

    Hashable and cheap to copy. Fields named in ``HIDDEN`` are unknown to the agent.

    Attributes:
        intent: The customer's intent name (hidden).
        initial_mood: Mood index at the opening, 0 calm, 1 frustrated, 2 angry (hidden).
        mood: Current mood index (hidden; follows from ``initial_mood`` and ``actions``).
        patience: Agent turns the customer tolerates before leaving (hidden).
        vague: Whether the opening was vague (hidden).
        turn: Agent turns taken so far.
        actions: The agent's actions so far.
        transcript: Every segment so far, ``"Customer: ..."`` and ``"Agent: ..."``, oldest first.
        customer_turns: One ``(kind, body, opener, closer)`` tuple per customer turn: the
            :class:`TurnKind`, the request body id (or reply id), and the mood-phrase ids
            (``-1`` when absent). This is the clean wording behind each customer segment,
            before any noise.
        outcome: ``""`` while running, else ``"success"``, ``"escalated"``, ``"abandoned"``
            or ``"truncated"``.
    """

    HIDDEN: ClassVar[tuple[str, ...]] = ("intent", "initial_mood", "mood", "patience", "vague")

    intent: str
    initial_mood: int
    mood: int
    patience: int
    vague: bool
    turn: int = 0
    actions: tuple[int, ...] = ()
    transcript: tuple[str, ...] = ()
    customer_turns: tuple[tuple[int, int, int, int], ...] = ()
    outcome: str = ""


def _transition(
    action: int, n_groups: int, group: int, mood: int, specified: bool, turns: int, patience: int
) -> tuple[int, bool, int, str, bool]:
    """The customer's deterministic response to ``action``.

    Args:
        action: The agent's action.
        n_groups: Number of resolve actions (they come first).
        group: The customer's true group.
        mood: Mood before the action.
        specified: Whether the customer has already stated a specific request.
        turns: Agent turns including this one.
        patience: Turns the customer tolerates.

    Returns:
        ``(mood, specified, reply kind, outcome, wrong_resolution)``.
    """
    wrong = False
    if action < n_groups:
        if action == group:
            return mood, specified, TurnKind.THANKS, "success", False
        wrong = True
        if mood == _ANGRY:
            return mood, specified, TurnKind.LEAVE, "abandoned", True
        mood += 1
        kind = TurnKind.COMPLAINT
    elif action == n_groups:  # ask_clarify: needless after a specific request, and annoying
        if specified and mood < _ANGRY:
            mood += 1
        specified = True
        kind = TurnKind.ANSWER
    elif action == n_groups + 1:  # apologise
        if mood > 0:
            mood -= 1
        kind = TurnKind.ACK
    else:  # escalate
        return mood, specified, TurnKind.HANDOFF, "escalated", False
    if turns >= patience:
        return mood, specified, TurnKind.LEAVE, "abandoned", wrong
    return mood, specified, kind, "", wrong


def _require_hidden(state: DialogueState, caller: str) -> None:
    """Raise ``TypeError`` if ``state`` lacks its hidden fields (a state from ``hide()``)."""
    if any(getattr(state, name) is None for name in DialogueState.HIDDEN):
        raise TypeError(
            f"{caller}() needs a state with its hidden fields (mood, patience, vagueness); a "
            "state from hide() has none (draw one with sample_hidden())"
        )


class CustomerServiceEnv(gym.Env[dict, int]):
    """A banking support chat with a simulated customer whose need, mood and patience are hidden.

    ## Description

    Each episode a customer writes in about one of 44 intents (built-in corpus) or one of the
    categories of a user's CSV (e.g. Banking77's 77), each belonging to a resolution group
    (11 built-in groups, such as ``card_delivery`` or ``transfers``). The agent reads the
    dialogue and, each turn, resolves a group, asks the customer to clarify, apologises or
    escalates to a specialist. The customer's mood (calm, frustrated, angry) shows only through
    wording; the intent shows through the request, unless the opening was vague ("there's a
    problem with my card"), which names only a topic spanning several groups. Wrong guesses,
    needless clarification questions and slow service upset the customer; apologies calm them.

    Customer dynamics (deterministic given the hidden state, except for wording):

    * resolve the right group: solved, the customer thanks the agent;
    * resolve a wrong group: the customer complains and gets one mood level more upset; an
      angry customer leaves instead;
    * ask_clarify: the customer states a specific request (a new utterance of the same intent);
      asking again after a specific request makes them one level more upset;
    * apologise: one mood level calmer;
    * escalate: a specialist resolves the case, at a cost;
    * after ``patience`` agent turns without resolution the customer leaves.

    With ``noise > 0`` customer text gets NLU-style noise: each word is dropped or has two
    letters swapped with probability ``noise``.

    ## Action Space

    ``Discrete(n_groups + 3)``: ``resolve_<group>`` for each group (action ``i`` resolves
    ``groups[i]``), then ``ask_clarify``, ``apologise``, ``escalate``; names in
    ``action_names``. :meth:`action_masks` masks groups already rejected by the customer.

    ## Observation Space

    ``Dict`` with

    * ``"dialogue"``: ``Tuple`` of ``history`` text segments (``text_space(max_length)``), the
      most recent turns oldest first, left-padded with ``""`` so the newest customer turn is
      always the last segment. Customer segments start ``"Customer: "``, agent segments
      ``"Agent: "`` followed by a fixed phrase per action.
    * ``"request"``: ``text_space(max_length)``: the customer's newest request, i.e. their
      opening message or their answer to the latest clarification question (the same text as
      that customer segment). It stays in this one slot while apologies, complaints and agent
      turns push it back through (and out of) ``"dialogue"``, so a policy reads the request
      in a fixed place at every turn.
    * ``"features"``: ``Box(0, 1, (4,), float32)``: turns taken, clarification questions,
      apologies and wrong resolutions so far, each divided by ``max_turns``.

    Nothing hidden is observed.

    ## Rewards

    Configured by :class:`RewardConfig` (defaults in brackets). Every step pays ``turn`` [-1];
    plus ``success * mood_scale[mood]`` [20 x (1, 0.75, 0.5) for calm, frustrated, angry] on a
    correct resolution, ``wrong_resolution`` [-4] on a wrong one, ``escalate`` [-5] on
    escalation, ``abandon`` [-10] when the customer leaves. With the defaults a step's reward
    lies in [-15, 19] (``RewardConfig.step_bounds``) and an episode's return in [-110, 19]
    (``RewardConfig.return_bounds(max_turns)``).

    ## Episode End

    Terminates on a correct resolution, an escalation, or the customer leaving; truncates
    after ``max_turns`` agent turns (the registered id also has ``max_episode_steps=20``).
    Every step's ``info`` holds ``success``, ``intent``, ``group``, ``turns``, ``mood``,
    ``outcome`` and ``episode_metrics`` (``METRICS`` so far).

    ## Arguments

    See ``__init__``; e.g. ``gym.make("rlagent/CustomerService-v0", split="test")`` or
    ``gym.make("rlagent/CustomerService-v0", dataset=".../banking77/train.csv")``.

    ## Version History

    * v0: Initial version; the ``"request"`` entry was added to the observation before the
      first release.

    Example:
        >>> import gymnasium as gym, envs
        >>> env = gym.make("rlagent/CustomerService-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs["dialogue"][-1].startswith("Customer: ")
        True
        >>> env.unwrapped.action_names[-3:]
        ('ask_clarify', 'apologise', 'escalate')
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    BASELINES: ClassVar[Mapping[str, type]] = {
        "random": RandomPolicy,
        "heuristic": HeuristicPolicy,
        "oracle": OraclePolicy,
    }
    METRICS: ClassVar[tuple[str, ...]] = (
        "success_rate",
        "turns",
        "escalated",
        "abandoned",
        "wrong_resolutions",
    )
    MAIN_METRIC: ClassVar[str] = "success_rate"

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        split: str = "train",
        dataset: str | os.PathLike | None = None,
        groups: Mapping[str, str] | str | os.PathLike | None = None,
        reward: RewardConfig | None = None,
        patience: tuple[int, int] = (4, 8),
        vague_prob: float = 0.3,
        noise: float = 0.0,
        mood_probs: tuple[float, float, float] = (0.5, 0.3, 0.2),
        max_turns: int = 20,
        history: int = 6,
        max_length: int = 200,
    ) -> None:
        """Create the environment.

        Args:
            render_mode: ``"ansi"`` (``render()`` returns the transcript) or ``None``.
            split: ``"train"`` or ``"test"``: which templates and mood phrases customers use
                (disjoint phrasings). With ``dataset``, pass the split's own CSV too.
            dataset: Optional CSV ``text,category`` whose rows replace the built-in specific
                requests (e.g. Banking77's ``train.csv`` for training, ``test.csv`` for
                evaluation).
            groups: With ``dataset``: category -> group mapping, a dict or JSON file;
                ``None`` uses the bundled Banking77 mapping.
            reward: Reward configuration; ``None`` for the defaults.
            patience: Inclusive range the customer's patience (agent turns) is drawn from.
            vague_prob: Probability that the opening is vague.
            noise: Per-word probability of dropping a word or swapping two letters.
            mood_probs: Probabilities of an opening mood of calm, frustrated, angry.
            max_turns: Agent turns before the env truncates the episode.
            history: Number of text segments in the observation.
            max_length: Maximum characters per segment.

        Raises:
            CustomerServiceConfigError: If an argument is out of range.
            DatasetFormatError: If the dataset or mapping file is malformed.
        """
        check_split(split)
        lo, hi = (int(p) for p in patience)
        if not 1 <= lo <= hi:
            raise CustomerServiceConfigError(
                f"patience={patience!r} must be a range (low, high) with 1 <= low <= high, "
                "e.g. patience=(4, 8)."
            )
        for name, value in (("vague_prob", vague_prob), ("noise", noise)):
            if not 0.0 <= value <= 1.0:
                raise CustomerServiceConfigError(
                    f"{name}={value!r} must be a probability in [0, 1]."
                )
        if len(mood_probs) != 3 or min(mood_probs) < 0 or not math.isclose(sum(mood_probs), 1):
            raise CustomerServiceConfigError(
                f"mood_probs={mood_probs!r} must be 3 non-negative probabilities (calm, "
                "frustrated, angry) summing to 1, e.g. (0.5, 0.3, 0.2)."
            )
        if max_turns < 1 or history < 2 or max_length < 32:
            raise CustomerServiceConfigError(
                f"max_turns={max_turns}, history={history}, max_length={max_length}: expected "
                "max_turns >= 1, history >= 2 and max_length >= 32."
            )
        if groups is not None and dataset is None:
            raise CustomerServiceConfigError(
                "groups= was given without dataset=; groups maps a dataset's categories, so "
                "pass dataset=PATH too (the built-in corpus has its own groups)."
            )
        self.render_mode = render_mode
        self.split = split
        self.reward_config = reward if reward is not None else RewardConfig()
        self.patience_range = (lo, hi)
        self.vague_prob = float(vague_prob)
        self.noise = float(noise)
        self.mood_probs = tuple(float(p) for p in mood_probs)
        self.max_turns = int(max_turns)
        self.history = int(history)
        self.max_length = int(max_length)
        self.bank: UtteranceBank = (
            builtin_bank(split) if dataset is None else dataset_bank(dataset, groups, split)
        )
        bank = self.bank
        self.groups: tuple[str, ...] = bank.groups
        self.intents: tuple[str, ...] = bank.intents
        self._n_groups = len(bank.groups)
        self.action_names: tuple[str, ...] = (
            *(f"resolve_{g}" for g in bank.groups),
            "ask_clarify",
            "apologise",
            "escalate",
        )
        self.ASK_CLARIFY = self._n_groups
        self.APOLOGISE = self._n_groups + 1
        self.ESCALATE = self._n_groups + 2
        self.action_space = spaces.Discrete(len(self.action_names))
        self.observation_space = spaces.Dict(
            {
                "dialogue": spaces.Tuple([text_space(self.max_length)] * self.history),
                "features": spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32),
                "request": text_space(self.max_length),
            }
        )
        self._agent_segments = tuple(
            f"Agent: {data.RESOLVE_PHRASE.format(label=label)}"[: self.max_length]
            for label in bank.labels
        ) + tuple(
            f"Agent: {data.AGENT_PHRASES[name]}"[: self.max_length]
            for name in ("ask_clarify", "apologise", "escalate")
        )
        self._pad = tuple(("",) * (self.history - n) for n in range(self.history + 1))
        cum = np.cumsum(self.mood_probs)
        self._mood_cum = tuple(float(c) for c in cum / cum[-1])
        self._clear()

    # ------------------------------------------------------------------ episode state
    def _clear(self) -> None:
        self._intent = 0
        self._group = 0
        self._initial_mood = 0
        self._mood = 0
        self._patience = self.patience_range[0]
        self._vague = False
        self._specified = False
        self._turn = 0
        self._n_clarify = 0
        self._n_apology = 0
        self._n_wrong = 0
        self._rejected = 0
        self._outcome = "unset"
        self._actions: list[int] = []
        self._transcript: list[str] = []
        self._keys: list[tuple[int, int, int, int]] = []
        self._request = ""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a conversation with a new customer.

        Args:
            seed: Seed for ``self.np_random``.
            options: Optionally fix hidden parts of the customer: ``"intent"`` (name),
                ``"mood"`` (``"calm"``/``"frustrated"``/``"angry"``), ``"patience"`` (int),
                ``"vague"`` (bool).

        Returns:
            The first observation (the customer's opening) and the info dict.
        """
        super().reset(seed=seed)
        rng = self.np_random
        self._clear()
        self._intent = int(rng.random() * len(self.intents))
        u = rng.random()
        self._initial_mood = next(i for i, c in enumerate(self._mood_cum) if u < c or i == 2)
        lo, hi = self.patience_range
        self._patience = lo + int(rng.random() * (hi - lo + 1))
        self._vague = bool(rng.random() < self.vague_prob)
        if options:
            self._apply_options(options)
        self._group = self.bank.intent_group[self._intent]
        self._mood = self._initial_mood
        self._specified = not self._vague
        self._outcome = ""
        kind = TurnKind.OPEN_VAGUE if self._vague else TurnKind.OPEN_SPECIFIC
        self._say(kind)
        return self._observation(), self._info()

    def _apply_options(self, options: Mapping[str, Any]) -> None:
        known = {"intent", "mood", "patience", "vague"}
        unknown = set(options) - known
        if unknown:
            raise CustomerServiceConfigError(
                f"reset options {sorted(unknown)} are not supported; expected keys among "
                f"{sorted(known)}."
            )
        if "intent" in options:
            if options["intent"] not in self.bank.intent_index:
                raise CustomerServiceConfigError(
                    f"reset option intent={options['intent']!r} is not an intent of this env; "
                    "see env.unwrapped.intents."
                )
            self._intent = self.bank.intent_index[options["intent"]]
        if "mood" in options:
            if options["mood"] not in MOODS:
                raise CustomerServiceConfigError(
                    f"reset option mood={options['mood']!r}; expected one of {MOODS}."
                )
            self._initial_mood = MOODS.index(options["mood"])
        if "patience" in options:
            if int(options["patience"]) < 1:
                raise CustomerServiceConfigError(
                    f"reset option patience={options['patience']!r}; expected an int >= 1."
                )
            self._patience = int(options["patience"])
        if "vague" in options:
            self._vague = bool(options["vague"])

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Take one agent turn; the customer replies (or the episode ends).

        Raises:
            EpisodeFinishedError: If the episode has ended (call ``reset``).
            InvalidActionError: If ``action`` is not in ``action_space``.
        """
        if self._outcome:
            raise EpisodeFinishedError(
                f"step() called after the episode ended (outcome {self._outcome!r}); call "
                "reset() first."
            )
        a = int(action)
        if not 0 <= a < len(self.action_names):
            raise InvalidActionError(
                f"action {action!r} is outside Discrete({len(self.action_names)}); expected an "
                f"int in [0, {len(self.action_names) - 1}] (see env.unwrapped.action_names)."
            )
        self._turn += 1
        rc = self.reward_config
        mood, self._specified, kind, outcome, wrong = _transition(
            a, self._n_groups, self._group, self._mood, self._specified, self._turn,
            self._patience,
        )
        reward = rc.turn
        if wrong:
            reward += rc.wrong_resolution
            self._n_wrong += 1
            self._rejected |= 1 << a
        elif a == self.ASK_CLARIFY:
            self._n_clarify += 1
        elif a == self.APOLOGISE:
            self._n_apology += 1
        if outcome == "success":
            reward += rc.success * rc.mood_scale[mood]
        elif outcome == "escalated":
            reward += rc.escalate
        elif outcome == "abandoned":
            reward += rc.abandon
        self._mood = mood
        self._actions.append(a)
        self._transcript.append(self._agent_segments[a])
        self._say(kind)
        truncated = not outcome and self._turn >= self.max_turns
        self._outcome = "truncated" if truncated else outcome
        return self._observation(), float(reward), bool(outcome), truncated, self._info()

    # ------------------------------------------------------------------ text
    def _say(self, kind: int) -> None:
        bank = self.bank
        rng = self.np_random
        mood = self._mood
        opener = closer = -1
        if kind in TurnKind.REQUESTS:
            if kind == TurnKind.OPEN_VAGUE:
                body, text = bank.vague(self._intent, rng)
            else:
                body, text = bank.specific(self._intent, rng)
            opener = bank.openers.sample(mood, rng)
            closer = bank.closers.sample(mood, rng)
            parts = (bank.openers.texts[opener], text, bank.closers.texts[closer])
            text = " ".join(p for p in parts if p)
        else:
            body, text = bank.reply(kind - TurnKind.COMPLAINT, rng)
            if kind in TurnKind.MOODY_REPLIES:
                closer = bank.closers.sample(mood, rng)
                if bank.closers.texts[closer]:
                    text = f"{text} {bank.closers.texts[closer]}"
        if self.noise > 0.0:
            text = self._add_noise(text, rng)
        self._keys.append((kind, body, opener, closer))
        segment = f"Customer: {text}"[: self.max_length]
        self._transcript.append(segment)
        if kind in TurnKind.REQUESTS:
            self._request = segment

    def _add_noise(self, text: str, rng: np.random.Generator) -> str:
        words = text.split(" ")
        hits = rng.random(len(words))
        how = rng.random(len(words))
        out = []
        for word, hit, h in zip(words, hits, how, strict=True):
            if hit >= self.noise:
                out.append(word)
            elif h < 0.5 or len(word) < 2:
                continue  # dropped
            else:
                i = int((h - 0.5) * 2 * (len(word) - 1))
                out.append(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
        return " ".join(out) if out else words[0]

    def _observation(self) -> dict[str, Any]:
        t = self._transcript
        k = self.history
        dialogue = tuple(t[-k:]) if len(t) >= k else self._pad[len(t)] + tuple(t)
        scale = 1.0 / self.max_turns
        features = np.array(
            (self._turn * scale, self._n_clarify * scale, self._n_apology * scale,
             self._n_wrong * scale),
            dtype=np.float32,
        )
        np.minimum(features, 1.0, out=features)
        return {"dialogue": dialogue, "features": features, "request": self._request}

    def _info(self) -> dict[str, Any]:
        outcome = self._outcome
        return {
            "success": outcome == "success",
            "intent": self.intents[self._intent],
            "group": self.groups[self._group],
            "turns": self._turn,
            "mood": MOODS[self._mood],
            "outcome": outcome,
            "episode_metrics": {
                "success_rate": 1.0 if outcome == "success" else 0.0,
                "turns": float(self._turn),
                "escalated": 1.0 if outcome == "escalated" else 0.0,
                "abandoned": 1.0 if outcome == "abandoned" else 0.0,
                "wrong_resolutions": float(self._n_wrong),
            },
        }

    def render(self) -> str | None:
        """The transcript so far, one segment per line (``render_mode="ansi"``).

        Other render modes (SB3's ``make_vec_env`` asks for ``"rgb_array"``) render nothing.
        """
        if self.render_mode != "ansi":
            gym.logger.warn(
                f"render_mode={self.render_mode!r}: CustomerServiceEnv renders only 'ansi' "
                "(the transcript); pass render_mode='ansi'."
            )
            return None
        lines = list(self._transcript)
        if self._outcome and self._outcome != "unset":
            lines.append(f"[{self._outcome}]")
        return "\n".join(lines)

    def action_masks(self) -> np.ndarray:
        """Boolean mask over actions: ``False`` for groups the customer already rejected."""
        mask = np.ones(len(self.action_names), dtype=bool)
        rejected = self._rejected
        while rejected:
            low = rejected & -rejected
            mask[low.bit_length() - 1] = False
            rejected ^= low
        return mask

    # ------------------------------------------------------------------ privileged critic
    @property
    def privileged_space(self) -> spaces.Box:
        """Space of :meth:`privileged_features`: ``Box(0, 1, (5 + n_groups,), float32)``."""
        return spaces.Box(0.0, 1.0, shape=(5 + self._n_groups,), dtype=np.float32)

    def privileged_features(self, state: DialogueState | None = None) -> np.ndarray:
        """Hidden features for a critic that trains beside the policy (never for acting).

        ``[calm, frustrated, angry, request specified, turns of patience left / max_turns,
        group one-hot...]``: the customer's current mood (one-hot), whether the agent has
        heard a specific request yet, how long the customer will still wait, and the
        resolution group of their intent (in ``groups`` order). See
        :class:`rlagent.wrappers.PrivilegedObservation`; a planner passes the ``state`` it
        simulates.

        Args:
            state: A state from :meth:`get_state` or :meth:`sample_hidden`; ``None`` reads the
                current one.

        Returns:
            float32 array of shape ``(5 + n_groups,)``.
        """
        if state is None:
            mood, patience, turn = self._mood, self._patience, self._turn
            specified, group = self._specified, self._group
        else:
            _require_hidden(state, "privileged_features")
            mood, patience, turn = state.mood, state.patience, state.turn
            specified = not state.vague or any(
                k[0] == TurnKind.ANSWER for k in state.customer_turns
            )
            group = self.bank.intent_group[self.bank.intent_index[state.intent]]
        out = np.zeros(5 + self._n_groups, dtype=np.float32)
        out[int(mood)] = 1.0
        out[3] = float(specified)
        out[4] = min(max(patience - turn, 0) / self.max_turns, 1.0)
        out[5 + group] = 1.0
        return out

    def shaping_potential(self, state: DialogueState | None = None) -> float:
        """The success bonus the customer's current mood would pay, as a shaping potential.

        ``reward_config.success * reward_config.mood_scale[mood]`` (hidden). With it,
        :class:`rlagent.wrappers.PotentialShaping` pays a mood change when it happens: an
        apology that calms an angry customer earns its share of the bonus at once, and a wrong
        resolution that upsets one costs it at once, instead of both showing only in the final
        bonus (``reward_shaping: true`` in a training config). The potential is 0 once the
        episode ends, so the shaped return is the return minus the opening mood's bonus, which
        no action changes. For training and planning only.

        Args:
            state: A state from :meth:`get_state` or :meth:`sample_hidden`; ``None`` reads the
                current one.

        Returns:
            The bonus a correct resolution would pay now.

        Raises:
            TypeError: If ``state`` has no hidden fields (a state from ``hide()``, which
                ``rlagent.planning.belief`` uses for what the agent observes).
        """
        if state is None:
            mood = self._mood
        else:
            _require_hidden(state, "shaping_potential")
            mood = state.mood
        rc = self.reward_config
        return float(rc.success * rc.mood_scale[int(mood)])

    # ------------------------------------------------------------------ planning support
    def get_state(self) -> DialogueState:
        """The current :class:`DialogueState` (cheap; immutable)."""
        return DialogueState(
            intent=self.intents[self._intent],
            initial_mood=self._initial_mood,
            mood=self._mood,
            patience=self._patience,
            vague=self._vague,
            turn=self._turn,
            actions=tuple(self._actions),
            transcript=tuple(self._transcript),
            customer_turns=tuple(self._keys),
            outcome=self._outcome,
        )

    def set_state(self, state: DialogueState) -> None:
        """Continue from ``state``; assign ``np_random`` too to fix what happens next.

        Raises:
            CustomerServiceConfigError: If ``state`` is not a :class:`DialogueState` of this
                env (unknown intent).
        """
        if not isinstance(state, DialogueState):
            raise CustomerServiceConfigError(
                f"set_state expects a DialogueState (from get_state), received "
                f"{type(state).__name__}."
            )
        index = self.bank.intent_index.get(state.intent)
        if index is None:
            raise CustomerServiceConfigError(
                f"set_state: intent {state.intent!r} is not an intent of this env; states "
                "must come from an env with the same corpus or dataset."
            )
        self._intent = index
        self._group = self.bank.intent_group[index]
        self._initial_mood = state.initial_mood
        self._mood = state.mood
        self._patience = state.patience
        self._vague = state.vague
        self._turn = state.turn
        self._outcome = state.outcome
        self._actions = list(state.actions)
        self._transcript = list(state.transcript)
        self._keys = list(state.customer_turns)
        # Customer turn i is transcript segment 2 * i (the customer speaks first, then turns
        # alternate); the newest request is the last turn of a request kind.
        self._request = next(
            (
                state.transcript[2 * i]
                for i in range(len(state.customer_turns) - 1, -1, -1)
                if state.customer_turns[i][0] in TurnKind.REQUESTS
                and 2 * i < len(state.transcript)
            ),
            "",
        )
        self._specified = any(
            k[0] in (TurnKind.OPEN_SPECIFIC, TurnKind.ANSWER) for k in state.customer_turns
        )
        n = self._n_groups
        self._n_clarify = state.actions.count(self.ASK_CLARIFY)
        self._n_apology = state.actions.count(self.APOLOGISE)
        resolves = [a for a in state.actions if a < n]
        if state.outcome == "success" and resolves:
            resolves.pop()
        self._n_wrong = len(resolves)
        self._rejected = 0
        for a in resolves:
            self._rejected |= 1 << a

    def observe(self) -> dict[str, Any]:
        """The raw observation of the current state (e.g. after :meth:`set_state`)."""
        return self._observation()

    def sample_hidden(self, state: DialogueState, rng: np.random.Generator) -> DialogueState:
        """A copy of ``state`` with the hidden fields drawn from the prior.

        The intent is uniform and the opening mood follows ``mood_probs``; ``mood`` is then
        replayed through the recorded actions. ``vague`` is set to what the opening shows and
        ``patience`` is drawn uniformly from the part of its range the customer's staying so
        far allows. Both restrictions multiply every sample's prior by the same constant, so
        weighting samples by :meth:`log_likelihood` still gives the exact posterior.
        """
        intent = int(rng.random() * len(self.intents))
        u = rng.random()
        initial = next(i for i, c in enumerate(self._mood_cum) if u < c or i == 2)
        lo, hi = self.patience_range
        if not state.outcome:
            lo = min(max(lo, state.turn + 1), hi)
        patience = lo + int(rng.random() * (hi - lo + 1))
        vague = (
            state.customer_turns[0][0] == TurnKind.OPEN_VAGUE
            if state.customer_turns
            else bool(rng.random() < self.vague_prob)
        )
        group = self.bank.intent_group[intent]
        mood, specified = initial, not vague
        for t, a in enumerate(state.actions, start=1):
            mood, specified, _, outcome, _ = _transition(
                a, self._n_groups, group, mood, specified, t, patience
            )
            if outcome:
                break
        return dataclasses.replace(
            state,
            intent=self.intents[intent],
            initial_mood=initial,
            mood=mood,
            patience=patience,
            vague=vague,
        )

    def log_likelihood(self, state: DialogueState) -> float:
        """Log-probability of the customer turns in ``state`` given its hidden fields.

        Exact for the clean wording: it replays the deterministic customer dynamics under
        the hidden intent, mood, patience and vagueness and multiplies the probabilities of
        each recorded request body (template or dataset row), mood phrase and reply. The
        probabilities of slot values are the same under every hypothesis and are left out.
        With ``noise > 0`` it scores the clean wording recorded in
        ``state.customer_turns`` rather than the noisy text (an approximation: noise does
        not depend on the hidden state, but the agent sees only the noisy text).

        Returns:
            A log-probability up to a constant shared by all hypotheses; ``-inf`` when the
            hidden fields cannot have produced the recorded turns.
        """
        bank = self.bank
        index = bank.intent_index.get(state.intent)
        keys = state.customer_turns
        if index is None or not keys:
            return _NEG_INF if index is None else 0.0
        kind, body, opener, closer = keys[0]
        if state.vague != (kind == TurnKind.OPEN_VAGUE):
            return _NEG_INF
        table = bank.vague_log_prob[index] if state.vague else bank.specific_log_prob[index]
        mood = state.initial_mood
        opener_lp = bank.openers.log_probs
        closer_lp = bank.closers.log_probs
        lp = table.get(body, _NEG_INF) + opener_lp[mood][opener] + closer_lp[mood][closer]
        group = bank.intent_group[index]
        specified = not state.vague
        specific = bank.specific_log_prob[index]
        for t, a in enumerate(state.actions, start=1):
            if lp == _NEG_INF or t >= len(keys):
                return _NEG_INF
            mood, specified, expected, _, _ = _transition(
                a, self._n_groups, group, mood, specified, t, state.patience
            )
            kind, body, opener, closer = keys[t]
            if kind != expected:
                return _NEG_INF
            if kind == TurnKind.ANSWER:
                lp += specific.get(body, _NEG_INF)
            else:
                lp += bank.reply_log_prob[kind - TurnKind.COMPLAINT]
            if opener >= 0:
                lp += opener_lp[mood][opener]
            if closer >= 0:
                lp += closer_lp[mood][closer]
        if mood != state.mood:
            return _NEG_INF
        return lp
