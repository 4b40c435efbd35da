"""The customer-service dialogue environment: simulated customers with hidden needs and moods.

The env class keeps its manual, arguments and episode loop here; its hidden state and the
customer's dynamics live in :mod:`envs.customer_service.state`, its text in ``_rendering`` and
its planning support in ``_planning``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs._text import text_space
from envs.customer_service import _corpus_data as data
from envs.customer_service._planning import _PlanningSupport
from envs.customer_service._rendering import AGENT_PREFIX, _DialogueRendering, rejected_mask
from envs.customer_service.baselines import (
    HeuristicPolicy,
    LabelledPolicy,
    OraclePolicy,
    RandomPolicy,
)
from envs.customer_service.config import RewardConfig
from envs.customer_service.corpus import (
    DEFAULT_CORPUS,
    MOODS,
    UtteranceBank,
    builtin_bank,
    check_corpus,
    check_split,
)
from envs.customer_service.dataset import DEFAULT_VAL_FRACTION, check_val_fraction, dataset_bank
from envs.customer_service.errors import (
    CustomerServiceConfigError,
    EpisodeFinishedError,
    InvalidActionError,
)
from envs.customer_service.live import LiveDialogue
from envs.customer_service.state import DialogueState, TurnKind, _transition

__all__ = ["CustomerServiceEnv", "DialogueState", "TurnKind"]


class CustomerServiceEnv(_DialogueRendering, _PlanningSupport, gym.Env[dict, int]):
    """A banking support chat with a simulated customer whose need, mood and patience are hidden.

    ## Description

    Each episode a customer writes in about one of 78 intents (built-in corpus; 44 with
    ``corpus="core"``) or one of the categories of a user's CSV (e.g. Banking77's 77), each
    belonging to a resolution group (11 built-in groups, such as ``card_delivery`` or
    ``money_transfers``). The agent reads the dialogue and, each turn, resolves a group, asks
    the customer to clarify, apologises or escalates to a specialist. The customer's mood
    (calm, frustrated, angry) shows only through wording; the intent shows through the request,
    unless the opening was vague ("there's a problem with my card"), which names only a topic
    spanning several groups. Wrong guesses, needless clarification questions and slow service
    upset the customer; apologies calm them.

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

    Text spaces allow printable ASCII, and with a ``dataset`` also the other characters of its
    rows and group names (a dataset in Arabic, say).

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

    Splits: ``split="train"`` for learning, ``split="val"`` (validation) for every choice
    (the best checkpoint, hyperparameters, variants) and ``split="test"`` once per config for
    the figure reported. The built-in corpus has disjoint phrasings per split (78 intents;
    1,473 specific and 41 vague templates for train, 156 and 6 each for val and test). With
    ``dataset=``, train and val are two parts of the training file: ``val_fraction`` (0.1) of
    each category's distinct texts, chosen by a stable hash of the text (the same whatever the
    row order), is held out for ``split="val"`` and the rest used by ``split="train"``; at
    least one text per category stays in train, and a category too small to hold out any
    (fewer than 5 texts at 0.1) stays whole in train. ``split="test"`` uses every row of the
    file given, the test CSV.

    ## Live sessions

    :meth:`live_session` returns a :class:`~envs.customer_service.live.LiveDialogue`: a real
    customer's messages (``customer(text)``) and the agent's actions (``act(action)``, which
    returns the agent's reply) build the observation this env would show at the same point,
    by the same code, with the same action masks, so a policy trained here reads a live chat
    unchanged. Nothing hidden is simulated: text after a resolution counts as the customer
    saying it was not solved (a wrong resolution).

    ## Version History

    * v0: Initial version; the ``"request"`` entry was added to the observation before the
      first release. Later, backward compatible: ``split="val"`` (new phrasings; train and
      test unchanged) and ``val_fraction`` (dataset mode: ``split="train"`` now leaves out
      the held-out tenth of the training file; pass ``val_fraction=0`` for every row).
      Then the built-in corpus grew from 44 to 78 intents (every kind of request of the
      bundled Banking77 mapping has one); ``corpus="core"`` keeps the 44 intents, and so the
      figures measured before the change.

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
        "labelled": LabelledPolicy,
    }
    #: The baseline a warm start clones by default (``rlagent train --warm-start``).
    EXPERT: ClassVar[str] = "labelled"
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
        val_fraction: float = DEFAULT_VAL_FRACTION,
        corpus: str | None = None,
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
            split: ``"train"``, ``"val"`` or ``"test"``: which templates and mood phrases
                customers use (disjoint phrasings). With ``dataset``, ``"train"`` and
                ``"val"`` take the training file's two parts (see ``val_fraction``) and
                ``"test"`` every row of the file given (pass the test CSV).
            dataset: Optional CSV ``text,category`` whose rows replace the built-in specific
                requests (e.g. Banking77's ``train.csv`` for training and validation,
                ``test.csv`` for the final test).
            groups: With ``dataset``: category -> group mapping, a dict or JSON file;
                ``None`` uses the bundled Banking77 mapping.
            val_fraction: With ``dataset``: the share of each category's distinct texts held
                out of ``split="train"`` for ``split="val"``, in [0, 1) (see
                :func:`envs.customer_service.dataset.validation_split`). Unused otherwise.
            corpus: Without ``dataset``: which built-in intents customers have, ``"full"``
                (all 78; what ``None`` means) or ``"core"`` (the 44 intents of earlier
                releases, on which earlier figures were measured). Not allowed with
                ``dataset``, whose categories are the intents.
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
        val_fraction = check_val_fraction(val_fraction)
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
        if corpus is not None and dataset is not None:
            raise CustomerServiceConfigError(
                f"corpus={corpus!r} was given with dataset=; corpus picks built-in intents and a "
                "dataset's categories replace them, so pass one or the other."
            )
        if dataset is None:
            corpus = DEFAULT_CORPUS if corpus is None else corpus
            check_corpus(corpus)
        self.render_mode = render_mode
        self.split = split
        #: The built-in intent set (``"full"`` or ``"core"``); ``None`` with a dataset.
        self.corpus: str | None = corpus
        self.val_fraction = val_fraction
        self.reward_config = reward if reward is not None else RewardConfig()
        self.patience_range = (lo, hi)
        self.vague_prob = float(vague_prob)
        self.noise = float(noise)
        self.mood_probs = tuple(float(p) for p in mood_probs)
        self.max_turns = int(max_turns)
        self.history = int(history)
        self.max_length = int(max_length)
        self.bank: UtteranceBank = (
            builtin_bank(split, corpus)
            if dataset is None
            else dataset_bank(dataset, groups, split, val_fraction=val_fraction)
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
        # A dataset's rows and group names may hold characters of any script.
        text = text_space(self.max_length, [*(b.text for b in bank.bodies), *bank.labels])
        self.observation_space = spaces.Dict(
            {
                "dialogue": spaces.Tuple([text] * self.history),
                "features": spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32),
                "request": text,
            }
        )
        #: What the agent says for each action (the text after ``"Agent: "``).
        self.agent_phrases: tuple[str, ...] = tuple(
            data.RESOLVE_PHRASE.format(label=label) for label in bank.labels
        ) + tuple(data.AGENT_PHRASES[name] for name in ("ask_clarify", "apologise", "escalate"))
        self._agent_segments = tuple(
            f"{AGENT_PREFIX}{phrase}"[: self.max_length] for phrase in self.agent_phrases
        )
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
            a,
            self._n_groups,
            self._group,
            self._mood,
            self._specified,
            self._turn,
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

    def action_masks(self) -> np.ndarray:
        """Boolean mask over actions: ``False`` for groups the customer already rejected."""
        return rejected_mask(self._rejected, len(self.action_names))

    def live_session(self) -> LiveDialogue:
        """A new :class:`~envs.customer_service.live.LiveDialogue` with this env's settings.

        A real customer's texts go in, this env's observations and action masks come out; the
        env itself is not touched (see "Live sessions" above).
        """
        return LiveDialogue(self)
