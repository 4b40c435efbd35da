"""A live customer-service chat: a real customer's messages, observed as the env observes them.

:class:`LiveDialogue` (from :meth:`CustomerServiceEnv.live_session`) keeps the part of an
episode that a real chat has: the transcript, the newest request, the counters behind the
``"features"`` entry and the groups the customer rejected. Its observations and action masks
come from the same functions as the env's (``envs.customer_service._rendering``), so a policy
trained on the env reads a live chat exactly as it read its training episodes.

Example:
    >>> from envs.customer_service import CustomerServiceEnv
    >>> chat = CustomerServiceEnv().live_session()
    >>> chat.customer("My card has not arrived yet.")
    >>> chat.observation()["request"]
    'Customer: My card has not arrived yet.'
    >>> chat.act(chat.action_names.index("ask_clarify"))
    'Could you tell me a bit more about the problem?'
    >>> chat.whose_turn
    'customer'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from envs._live import LiveInputError, check_live_text
from envs.customer_service._rendering import (
    customer_segment,
    dialogue_observation,
    rejected_mask,
)
from envs.customer_service.state import DialogueState, TurnKind

if TYPE_CHECKING:  # pragma: no cover
    from envs.customer_service.env import CustomerServiceEnv

__all__ = ["LiveDialogue", "LiveInputError"]


class LiveDialogue:
    """One live chat with a real customer, observed as :class:`CustomerServiceEnv` observes.

    Turns alternate as in the env: the customer opens (:meth:`customer`), then the agent
    (:meth:`act`) and the customer take turns. What the customer writes is a *request* (it
    goes into ``observation()["request"]``) when it opens the chat or answers the agent's
    ``ask_clarify``; otherwise it is a reply (to an apology, or a complaint) and the request
    stays. A resolve action ends the chat for now (``done``); if the customer writes again,
    the resolution was wrong: it counts as a wrong resolution and the group is masked in
    :meth:`action_masks`, exactly as the env counts a rejected group, and the chat goes on.
    ``escalate``, and the env's ``max_turns`` agent turns, end it for good (``ended``).

    How the opening was meant (vague or specific) and the customer's mood are not known: live
    text is taken as it comes.

    Args:
        env: The env whose settings (actions, phrases, ``history``, ``max_length``,
            ``max_turns``, text characters) the session takes; the env is not used afterwards.
    """

    def __init__(self, env: CustomerServiceEnv) -> None:
        self._names: tuple[str, ...] = tuple(env.action_names)
        self._phrases: tuple[str, ...] = tuple(env.agent_phrases)
        self._segments: tuple[str, ...] = tuple(env._agent_segments)
        self._n_groups = len(env.groups)
        self._history = int(env.history)
        self._max_length = int(env.max_length)
        self._max_turns = int(env.max_turns)
        self._text_space = env.observation_space["request"]
        self._transcript: list[str] = []
        self._kinds: list[int] = []
        self._actions: list[int] = []
        self._request = ""
        self._turn = 0
        self._n_clarify = 0
        self._n_apology = 0
        self._n_wrong = 0
        self._rejected = 0
        self._done = False
        self._ended = ""  # why the chat ended for good, "" while it may go on
        self._outcome = ""  # the env's outcome once ended: "escalated" or "truncated"

    # ------------------------------------------------------------------ the two turns
    def customer(self, text: str) -> None:
        """The customer writes ``text`` (without the ``"Customer: "`` prefix).

        Args:
            text: The message, as the customer wrote it; the segment is cut to the env's
                ``max_length`` characters as the env cuts its own.

        Raises:
            LiveInputError: The text is empty or whitespace only, or holds characters the
                env's text space lacks (named); it is the agent's turn (the customer's last
                message has no reply yet); or the chat has ended for good.
        """
        self._check_open()
        if self._transcript and self._whose() == "agent":
            raise LiveInputError(
                "It is the agent's turn: the customer's last message has no reply yet; call "
                "act(action) before the customer writes again."
            )
        text = check_live_text(text, self._text_space, "customer text")
        if not self._actions:
            kind = TurnKind.OPEN_SPECIFIC
        else:
            last = self._actions[-1]
            if last < self._n_groups:  # the resolution did not solve it
                kind = TurnKind.COMPLAINT
                self._n_wrong += 1
                self._rejected |= 1 << last
                self._done = False
            elif self._names[last] == "ask_clarify":
                kind = TurnKind.ANSWER
            else:
                kind = TurnKind.ACK
        segment = customer_segment(text, self._max_length)
        self._transcript.append(segment)
        self._kinds.append(kind)
        if kind in TurnKind.REQUESTS:
            self._request = segment

    def act(self, action: int) -> str:
        """The agent takes ``action``; returns what it says (without ``"Agent: "``).

        Counts the turn (and a clarification question or apology) as the env does. A resolve
        action sets :attr:`done` until the customer writes again; ``escalate`` and the
        ``max_turns``-th agent turn end the chat for good.

        Args:
            action: An index into :attr:`action_names`.

        Returns:
            The agent's reply, the env's fixed phrase for the action.

        Raises:
            LiveInputError: ``action`` is not an action index; it is the customer's turn (no
                message yet, or the agent already replied); or the chat has ended for good.
        """
        self._check_open()
        n = len(self._names)
        valid = isinstance(action, (int, np.integer)) and not isinstance(action, bool)
        if not valid or not 0 <= int(action) < n:
            raise LiveInputError(
                f"action {action!r} is not one of this env's {n} actions; expected an int in "
                f"[0, {n - 1}] (see action_names)."
            )
        if not self._transcript:
            raise LiveInputError(
                "The customer has not written yet; call customer(text) first (the customer "
                "opens the chat)."
            )
        if self._whose() == "customer":
            raise LiveInputError(
                "It is the customer's turn: the agent already replied; call customer(text) "
                "before the agent acts again."
            )
        a = int(action)
        self._turn += 1
        name = self._names[a]
        if name == "ask_clarify":
            self._n_clarify += 1
        elif name == "apologise":
            self._n_apology += 1
        self._actions.append(a)
        self._transcript.append(self._segments[a])
        if a < self._n_groups or name == "escalate":
            self._done = True
        if name == "escalate":
            self._ended, self._outcome = "the agent escalated to a specialist", "escalated"
        elif self._turn >= self._max_turns:
            self._done = True
            self._ended = f"it reached the env's max_turns={self._max_turns} agent turns"
            self._outcome = "truncated"
        return self._phrases[a]

    # ------------------------------------------------------------------ what the agent sees
    def observation(self) -> dict[str, Any]:
        """The env's observation at this point: ``"dialogue"``, ``"features"``, ``"request"``.

        Raises:
            LiveInputError: The customer has not written yet (the env's first observation
                holds the opening).
        """
        if not self._transcript:
            raise LiveInputError(
                "The session has no customer text yet; call customer(text) first (the env's "
                "first observation holds the customer's opening)."
            )
        return dialogue_observation(
            self._transcript,
            self._request,
            history=self._history,
            max_turns=self._max_turns,
            turn=self._turn,
            n_clarify=self._n_clarify,
            n_apology=self._n_apology,
            n_wrong=self._n_wrong,
        )

    def action_masks(self) -> np.ndarray:
        """Boolean mask over actions: ``False`` for groups the customer already rejected."""
        return rejected_mask(self._rejected, len(self._names))

    def state(self) -> DialogueState:
        """The observable :class:`DialogueState` of the chat, for a planner.

        The hidden fields are ``None`` (as ``rlagent.planning.hide`` leaves them). Wording
        ids are unknown in live text, so each customer turn is ``(kind, -1, -1, -1)``; the
        opening counts as a specific request (``TurnKind.OPEN_SPECIFIC``).
        """
        return DialogueState(
            intent=None,
            initial_mood=None,
            mood=None,
            patience=None,
            vague=None,
            turn=self._turn,
            actions=tuple(self._actions),
            transcript=tuple(self._transcript),
            customer_turns=tuple((kind, -1, -1, -1) for kind in self._kinds),
            outcome=self._outcome,
        )

    # ------------------------------------------------------------------ status
    @property
    def action_names(self) -> tuple[str, ...]:
        """The env's action names; action ``i`` is ``action_names[i]``."""
        return self._names

    @property
    def transcript(self) -> list[str]:
        """Every segment so far, oldest first (``"Customer: ..."``, ``"Agent: ..."``); a copy."""
        return list(self._transcript)

    @property
    def turn(self) -> int:
        """Agent turns taken so far."""
        return self._turn

    @property
    def done(self) -> bool:
        """Whether the agent's last action resolved, escalated or used the last turn."""
        return self._done

    @property
    def ended(self) -> bool:
        """Whether the chat is over for good (escalated, or ``max_turns`` agent turns)."""
        return bool(self._ended)

    @property
    def whose_turn(self) -> str | None:
        """``"customer"`` or ``"agent"``: who is to write next; ``None`` once :attr:`ended`."""
        if self._ended:
            return None
        return self._whose() if self._transcript else "customer"

    # ------------------------------------------------------------------ internals
    def _whose(self) -> str:
        # The customer opens and turns alternate: an odd count ends with the customer's.
        return "agent" if len(self._transcript) % 2 else "customer"

    def _check_open(self) -> None:
        if self._ended:
            raise LiveInputError(
                f"The session has ended for good ({self._ended}); start a new session for a "
                "new conversation."
            )
