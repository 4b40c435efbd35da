"""The customer-service env's hidden state and the customer's deterministic dynamics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from envs.customer_service.corpus import MOODS

__all__ = ["DialogueState", "TurnKind"]

_ANGRY = len(MOODS) - 1


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
