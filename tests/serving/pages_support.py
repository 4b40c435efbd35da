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

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from envs._live import LiveInputError
from rlagent.serving import InteractionLog

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


# ---------------------------------------------------------------------- what the tests call
def make_page_agent(kind: str) -> Any:
    """The agent the page tests serve: ``"dialogue"`` or ``"slate"``."""
    return {"dialogue": StubDialogueAgent, "slate": StubSlateAgent}[kind]()


def make_page_log(folder: Path, kind: str) -> InteractionLog:
    """The real SQLite interaction log the page tests serve with, in ``folder``."""
    agent = {"dialogue": StubDialogueAgent, "slate": StubSlateAgent}[kind]
    return InteractionLog(
        folder / f"{kind}.db",
        model_hash=agent.model_hash,
        env_id=agent.settings["env_id"],
        env_kwargs=agent.settings.get("env_kwargs", {}),
    )


def logged_decisions(log: InteractionLog) -> list[tuple[str, int, str]]:
    """Decisions the log holds, in order: ``(session_id, step, action_name)``."""
    return [(r.session_id, r.step, r.action_name) for r in log.decisions()]


def logged_feedback(log: InteractionLog) -> list[dict[str, Any]]:
    """Feedback the log holds: dicts with ``session_id``, ``resolved``, ``rating`` ..."""
    return [dataclasses.asdict(f) for f in log.feedback()]


def logged_clicks(log: InteractionLog) -> list[dict[str, Any]]:
    """Clicks the log holds: dicts with ``session_id``, ``candidate``, ``slate`` ..."""
    return [{"session_id": e.session_id, **e.payload} for e in log.events() if e.kind == "click"]
