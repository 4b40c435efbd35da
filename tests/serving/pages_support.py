"""What the page tests serve: a small agent, its live sessions and a log that records calls.

The stubs follow the serving contract exactly (``ServedAgent``: ``kind``, ``action_names``,
``model_hash``, ``settings``, ``new_session()``, ``decide(observations, masks)``; the envs'
live sessions; the interaction log's ``record_*`` methods), so that :func:`make_page_agent`,
:func:`make_page_log` and the ``logged_*`` readers are the only things to switch to a real
tiny-encoder model and the real SQLite log.

The dialogue agent asks a clarifying question on its first turn and resolves on its second
(the group named by the request's words); the slate agent ranks candidates by their word
overlap with the user's history, then by length.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

DIALOGUE_ACTIONS = (
    "card_arrival",
    "lost_or_stolen_card",
    "transfer_failed",
    "ask_clarify",
    "apologise",
    "escalate",
)
N_GROUPS = 3
N_CANDIDATES = 6
SLATE_SIZE = 2
CATALOG_TEXTS = tuple(
    f"{adjective} {topic} {kind}"
    for adjective, topic in [
        ("Gentle", "cooking"),
        ("Fast", "cycling"),
        ("Calm", "gardening"),
        ("Bold", "chess"),
        ("Quiet", "astronomy"),
        ("Bright", "jazz"),
    ]
    for kind in ("show", "documentary", "tutorial")
)


class LiveInputError(ValueError):
    """Input the live session cannot observe (the app maps this class name to a 422)."""


@dataclass(frozen=True)
class Decision:
    """One decision, as ``ServedAgent.decide`` returns it."""

    action: Any
    action_name: str
    probabilities: dict[str, float]
    value: float


def _softmax(scores: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return {name: w / total for name, w in zip(names, weights, strict=True)}


# ---------------------------------------------------------------------- dialogue
class StubLiveDialogue:
    """A live chat: the customer writes, the agent acts; a resolve or escalate ends it."""

    def __init__(self) -> None:
        self.transcript: list[str] = []
        self.request = ""
        self.turn = 0
        self.actions: list[int] = []
        self.done = False
        self.ended = False

    def customer(self, text: str) -> None:
        if self.ended:
            raise LiveInputError("The session has ended for good; start a new session.")
        if self.transcript and self.transcript[-1].startswith("Customer: "):
            raise LiveInputError("It is the agent's turn.")
        if not self.actions or DIALOGUE_ACTIONS[self.actions[-1]] == "ask_clarify":
            self.request = f"{self.request} {text}".strip()
        self.transcript.append(f"Customer: {text}")
        self.done = False

    def act(self, action: int) -> str:
        name = DIALOGUE_ACTIONS[int(action)]
        self.actions.append(int(action))
        self.turn += 1
        if int(action) < N_GROUPS or name == "escalate":
            self.done = True
        self.ended = name == "escalate"
        reply = {
            "ask_clarify": "Could you tell me a bit more about what happened?",
            "apologise": "I am sorry about that.",
            "escalate": "I am passing you to a specialist.",
        }.get(name, f"Here is how to fix it ({name.replace('_', ' ')}).")
        self.transcript.append(f"Agent: {reply}")
        return reply

    def observation(self) -> dict[str, Any]:
        return {
            "dialogue": "\n".join(self.transcript),
            "request": self.request,
            "features": np.array([self.turn], dtype=np.float32),
            "turn": self.turn,
        }

    def action_masks(self) -> np.ndarray:
        return np.ones(len(DIALOGUE_ACTIONS), dtype=bool)


class StubDialogueAgent:
    """Asks to clarify first, then resolves the group the request's words name."""

    kind = "dialogue"
    action_names = DIALOGUE_ACTIONS
    model_hash = "stub0dialogue0hash0123456789abcdef"
    settings: Mapping[str, Any] = {"env_id": "stub/Dialogue-v0", "planner": None}

    def new_session(self) -> StubLiveDialogue:
        return StubLiveDialogue()

    def decide(
        self, observations: Sequence[Mapping[str, Any]], masks: Sequence[Any]
    ) -> list[Decision]:
        return [self._decide(obs) for obs in observations]

    def _decide(self, obs: Mapping[str, Any]) -> Decision:
        request = str(obs["request"]).lower()
        if obs["turn"] == 0:
            chosen = DIALOGUE_ACTIONS.index("ask_clarify")
        elif "transfer" in request:
            chosen = DIALOGUE_ACTIONS.index("transfer_failed")
        elif "lost" in request or "stolen" in request:
            chosen = DIALOGUE_ACTIONS.index("lost_or_stolen_card")
        else:
            chosen = DIALOGUE_ACTIONS.index("card_arrival")
        scores = [-0.4 * i for i in range(len(DIALOGUE_ACTIONS))]
        scores[chosen] = 2.5
        probabilities = _softmax(scores, DIALOGUE_ACTIONS)
        return Decision(chosen, DIALOGUE_ACTIONS[chosen], probabilities, 0.5)


# ---------------------------------------------------------------------- recommendation
class StubLiveRecommendation:
    """Turns candidate texts into an observation; records what the user chose."""

    def __init__(self, n_candidates: int) -> None:
        self.n_candidates = n_candidates
        self.records: list[tuple[list[int], int | None, float | None]] = []

    def observation(
        self,
        candidates: Sequence[str],
        history: Sequence[str] | None = None,
        popularity: Sequence[float] | None = None,
    ) -> dict[str, Any]:
        if len(candidates) != self.n_candidates:
            raise LiveInputError(
                f"expected {self.n_candidates} candidates, got {len(candidates)}; send exactly "
                f"{self.n_candidates} item texts."
            )
        return {
            "candidates": tuple(candidates),
            "history": tuple(history or ()),
            "candidate_popularity": np.asarray(
                popularity if popularity is not None else [0.0] * len(candidates), np.float32
            ),
        }

    def record(self, slate: Sequence[int], clicked: int | None, minutes: float | None) -> None:
        self.records.append((list(slate), clicked, minutes))


class StubSlateAgent:
    """Shows the two candidates sharing most words with the history (longest on ties)."""

    kind = "slate"
    action_names = tuple(f"candidate {i}" for i in range(N_CANDIDATES))
    model_hash = "stub0slate0hash0fedcba9876543210"
    settings: Mapping[str, Any] = {
        "env_id": "stub/Recommendation-v0",
        "env_kwargs": {"n_candidates": N_CANDIDATES, "slate_size": SLATE_SIZE},
        "planner": None,
    }
    n_candidates = N_CANDIDATES

    def __init__(self) -> None:
        popularity = np.linspace(0.5, 4.0, len(CATALOG_TEXTS), dtype=np.float32)
        catalog = SimpleNamespace(texts=CATALOG_TEXTS, popularity=popularity)
        self.env = SimpleNamespace(unwrapped=SimpleNamespace(catalog=catalog))
        self.sessions: list[StubLiveRecommendation] = []

    def new_session(self) -> StubLiveRecommendation:
        session = StubLiveRecommendation(N_CANDIDATES)
        self.sessions.append(session)
        return session

    def decide(
        self, observations: Sequence[Mapping[str, Any]], masks: Sequence[Any]
    ) -> list[Decision]:
        return [self._decide(obs) for obs in observations]

    def _decide(self, obs: Mapping[str, Any]) -> Decision:
        seen = {w.lower() for text in obs["history"] for w in text.split()}
        scores = [
            len(seen & {w.lower() for w in text.split()}) + len(text) / 100
            for text in obs["candidates"]
        ]
        slate = sorted(range(len(scores)), key=lambda i: -scores[i])[:SLATE_SIZE]
        probabilities = _softmax(scores, self.action_names)
        return Decision(np.array(slate), "slate", probabilities, 0.1)


# ---------------------------------------------------------------------- log
@dataclass
class RecordingLog:
    """Records every call the app makes on an interaction log."""

    decisions: list[Any] = field(default_factory=list)
    sessions: list[tuple[str, str]] = field(default_factory=list)
    ended: list[tuple[str, str]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def record_decisions(self, records: Sequence[Any]) -> None:
        self.decisions.extend(records)

    def start_session(self, session_id: str, *, kind: str) -> None:
        self.sessions.append((session_id, kind))

    def end_session(self, session_id: str, reason: str) -> None:
        self.ended.append((session_id, reason))

    def record_feedback(self, session_id: str, **fields: Any) -> int:
        self.feedback.append({"session_id": session_id, **fields})
        return len(self.feedback)

    def record_event(self, session_id: str, name: str, payload: Mapping[str, Any]) -> None:
        self.events.append({"session_id": session_id, "name": name, **payload})

    def close(self) -> None:
        self.closed = True


# ---------------------------------------------------------------------- what the tests call
def make_page_agent(kind: str) -> Any:
    """The agent the page tests serve: ``"dialogue"`` or ``"slate"``."""
    return {"dialogue": StubDialogueAgent, "slate": StubSlateAgent}[kind]()


def make_page_log(folder: Path) -> RecordingLog:
    """The interaction log the page tests serve with (``folder`` is for a real log's file)."""
    return RecordingLog()


def logged_decisions(log: RecordingLog) -> list[tuple[str, int, str]]:
    """Decisions the log holds, in order: ``(session_id, step, action_name)``."""
    return [(r.session_id, r.step, r.action_name) for r in log.decisions]


def logged_feedback(log: RecordingLog) -> list[dict[str, Any]]:
    """Feedback the log holds: dicts with ``session_id``, ``resolved``, ``rating`` ..."""
    return list(log.feedback)


def logged_clicks(log: RecordingLog) -> list[dict[str, Any]]:
    """Clicks the log holds: dicts with ``session_id``, ``candidate``, ``slate`` ..."""
    return [e for e in log.events if e["name"] == "click"]


@contextlib.contextmanager
def decision_records() -> Iterator[None]:
    """Make ``rlagent.serving.interaction_log.DecisionRecord`` importable while it is absent.

    The app builds a ``DecisionRecord`` for every decision it logs; until the interaction log
    module lands, a plain record class stands in for it (only inside this block).
    """
    name = "rlagent.serving.interaction_log"
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
    else:
        yield
        return

    @dataclass
    class DecisionRecord:
        session_id: str
        step: int
        time: float
        observation: Any
        observation_text: str
        action: Any
        action_name: str
        probabilities: Any
        planner: Any
        model_hash: str

    module = types.ModuleType(name)
    module.DecisionRecord = DecisionRecord  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, name, module)
        yield
