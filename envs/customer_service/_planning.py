"""The customer-service env's planning and training support: states, beliefs, hidden features."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.customer_service.errors import CustomerServiceConfigError
from envs.customer_service.state import DialogueState, TurnKind, _require_hidden, _transition

__all__: list[str] = []

_NEG_INF = -math.inf


def _draw(weights: np.ndarray, fallback: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn in proportion to ``weights`` (to ``fallback`` when they sum to 0)."""
    total = float(weights.sum())
    if not total > 0.0:
        weights, total = fallback, float(fallback.sum())
    cum = np.cumsum(weights) / total
    return int(min(np.searchsorted(cum, rng.random(), side="right"), len(cum) - 1))


class _PlanningSupport:
    """State access, beliefs and privileged features for the customer-service env.

    A mixin of :class:`~envs.customer_service.CustomerServiceEnv`: it reads and restores the
    episode attributes that the env's ``__init__``, ``reset`` and ``step`` keep (``bank``,
    ``reward_config``, ``_mood``, ``_transcript`` ...).
    """

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

    def feedback_targets(self, action: int, reward: float) -> dict[int, float]:
        """What a logged decision's reward says about the :meth:`privileged_features` entries.

        A service never sees the hidden state, but a resolution's outcome reveals part of it:
        a resolution the customer accepted (``reward > 0``) says the request's group was the
        resolved one (and no other), one they rejected says it was not. Offline learning
        (``rlagent learn --probe-feedback``) fits a probe of the hidden features to these
        labels, so an agent can learn from a service's logs to read requests it misread.

        Args:
            action: The decision's action.
            reward: The env's reward for it (the logged feedback).

        Returns:
            ``{feature index: label in [0, 1]}``; empty where the decision reveals nothing
            (any action but a resolution).
        """
        action = int(action)
        if not 0 <= action < self._n_groups:
            return {}
        if reward > 0:
            return {5 + g: float(g == action) for g in range(self._n_groups)}
        return {5 + action: 0.0}

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
                if state.customer_turns[i][0] in TurnKind.REQUESTS and 2 * i < len(state.transcript)
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

    def sample_hidden(
        self,
        state: DialogueState,
        rng: np.random.Generator,
        *,
        posterior: np.ndarray | None = None,
    ) -> DialogueState:
        """A copy of ``state`` with the hidden fields drawn from the prior, or from a posterior.

        Prior (``posterior=None``): the intent is uniform and the opening mood follows
        ``mood_probs``; ``mood`` is then replayed through the recorded actions. ``vague`` is
        set to what the opening shows and ``patience`` is drawn uniformly from the part of its
        range the customer's staying so far allows. Both restrictions multiply every sample's
        prior by the same constant, so weighting samples by :meth:`log_likelihood` still gives
        the exact posterior.

        Posterior (what a learned belief passes): ``posterior`` holds a probability for each
        entry of :meth:`privileged_features`, ``[calm, frustrated, angry, specified, patience
        left, group...]``, as a reader of the transcript predicts them (e.g. the sigmoids of a
        policy's auxiliary head). The group is drawn from the group entries, normalised over
        the groups the customer has not already rejected (a resolve that did not end the
        episode), and the intent uniformly among this env's intents of that group (the
        prior's own conditional); the current mood from the three mood entries, normalised.
        While no clarification has been asked, ``vague`` is drawn as ``not specified`` from the
        ``specified`` entry; after one the customer has stated a specific request whatever
        the opening, and ``vague`` (which then changes nothing) follows ``vague_prob``.
        ``patience`` is drawn as for the prior (the ``patience left`` entry is not used), and
        the opening mood is set to the current one (the dynamics from here on do not read
        it). Only the observable ``turn``, ``actions`` and ``outcome`` of ``state`` are read:
        not the wording ids in ``customer_turns``, which name rows of the env that recorded
        them (another env's, when a planner's model env reads an evaluation env's state).

        Args:
            state: The state whose hidden fields to draw (from ``hide()`` or any other).
            rng: Source of the draws.
            posterior: ``None`` for the prior, or probabilities shaped like
                :meth:`privileged_features`.

        Returns:
            The state with ``intent``, ``initial_mood``, ``mood``, ``patience`` and ``vague``
            drawn.

        Raises:
            CustomerServiceConfigError: If ``posterior`` has the wrong shape or holds values
                outside [0, 1].
        """
        if posterior is not None:
            return self._sample_given(state, rng, posterior)
        intent = int(rng.random() * len(self.intents))
        u = rng.random()
        initial = next(i for i, c in enumerate(self._mood_cum) if u < c or i == 2)
        patience = self._sample_patience(state, rng)
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

    def _sample_patience(self, state: DialogueState, rng: np.random.Generator) -> int:
        """Patience uniform over the part of its range the customer's staying allows."""
        lo, hi = self.patience_range
        if not state.outcome:
            lo = min(max(lo, state.turn + 1), hi)
        return lo + int(rng.random() * (hi - lo + 1))

    def _sample_given(
        self, state: DialogueState, rng: np.random.Generator, posterior: Any
    ) -> DialogueState:
        """:meth:`sample_hidden` from a posterior over the privileged features."""
        n = self._n_groups
        probs = np.asarray(posterior, dtype=np.float64).reshape(-1)
        if probs.shape != (5 + n,) or not np.all((probs >= 0.0) & (probs <= 1.0)):
            span = f" in [{probs.min():g}, {probs.max():g}]" if probs.size else ""
            raise CustomerServiceConfigError(
                f"sample_hidden(posterior=...) got {probs.size} values{span}; expected {5 + n} "
                "probabilities in [0, 1], one per entry of privileged_features() (calm, "
                f"frustrated, angry, specified, patience left, then the {n} groups)."
            )
        bank = self.bank
        allowed = np.array([len(ids) > 0 for ids in bank.group_intents], dtype=np.float64)
        for a in state.actions:
            if a < n and (state.outcome != "success" or a != state.actions[-1]):
                allowed[a] = 0.0
        if not allowed.any():  # every group with intents rejected: the history is unexplained
            allowed = np.array([len(ids) > 0 for ids in bank.group_intents], dtype=np.float64)
        group = _draw(probs[5:] * allowed, allowed, rng)
        members = bank.group_intents[group]
        intent = members[int(rng.random() * len(members))]
        mood = _draw(probs[:3], np.asarray(self.mood_probs), rng)
        if self.ASK_CLARIFY in state.actions:
            vague = bool(rng.random() < self.vague_prob)
        else:
            vague = bool(rng.random() >= probs[3])
        return dataclasses.replace(
            state,
            intent=self.intents[intent],
            initial_mood=mood,
            mood=mood,
            patience=self._sample_patience(state, rng),
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
