"""Simulated customers over HTTP: the customer-service env plays the customer against a server.

:func:`play_customers` is the client side of a served agent's feedback loop (docs/feedback.md,
"The loop"). Each episode is one chat: the env (seeded ``seed + i`` for episode ``i``) writes
the customer's turns, the server at ``url`` decides through its HTTP API, exactly as for a
person, and the env answers the server's action and scores it. The env's reward for each
decision goes back as feedback on that step (``POST /v1/sessions/{id}/feedback``
``{"reward": r, "step": t}``), with ``{"resolved": ...}`` on the session when the chat ends, so
the server's interaction log holds what a real service would learn from. The episode's
session is then closed (``DELETE``).

Example:
    >>> from rlagent.serving import play_customers
    >>> run = play_customers("http://127.0.0.1:8000", episodes=100,
    ...                      env_kwargs={"dataset": "banking77/train.csv"})  # doctest: +SKIP
    >>> run.mean_return, run.success_rate  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlagent.serving.errors import ServingError

__all__ = ["CustomerRun", "CustomersError", "play_customers"]

#: How a customer-service env renders the customer's turns in its transcript.
_CUSTOMER_PREFIX = "Customer: "


class CustomersError(ServingError):
    """The simulated customers cannot talk to the server; the message says why."""


@dataclass(frozen=True)
class CustomerRun:
    """What :func:`play_customers` saw: one entry per episode, in episode order.

    Attributes:
        returns: The env's return of each chat.
        outcomes: The env's outcome of each chat (``"success"``, ``"escalated"``, ...).
        lengths: Decisions per chat.
        session_ids: The server's session id of each chat.
        actions: The action names the server chose, per chat.
        wall_time_s: Seconds the whole run took.
    """

    returns: list[float]
    outcomes: list[str]
    lengths: list[int]
    session_ids: list[str]
    actions: list[list[str]] = field(repr=False)
    wall_time_s: float

    @property
    def episodes(self) -> int:
        """Chats played."""
        return len(self.returns)

    @property
    def mean_return(self) -> float:
        """Mean return over the chats."""
        return float(np.mean(self.returns))

    @property
    def ci95(self) -> float:
        """Half-width of the normal 95% interval of the mean return."""
        n = len(self.returns)
        return float(1.96 * np.std(self.returns, ddof=1) / math.sqrt(n)) if n > 1 else math.nan

    @property
    def success_rate(self) -> float:
        """Share of chats the env scored a success."""
        return float(np.mean([o == "success" for o in self.outcomes]))

    def summary(self) -> dict[str, Any]:
        """Episodes, decisions, mean return with its interval, success rate and wall time."""
        return {
            "episodes": self.episodes,
            "decisions": int(sum(self.lengths)),
            "mean_return": self.mean_return,
            "ci95": self.ci95,
            "success_rate": self.success_rate,
            "wall_time_s": self.wall_time_s,
        }


def play_customers(
    url: str,
    *,
    env_id: str = "rlagent/CustomerService-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    episodes: int = 100,
    seed: int = 0,
    concurrency: int = 8,
    feedback: bool = True,
    timeout_s: float = 60.0,
) -> CustomerRun:
    """Play ``episodes`` simulated chats against the server at ``url``.

    Args:
        url: The server's base URL, e.g. ``http://127.0.0.1:8000``.
        env_id: The customer-service env that plays the customers (its action names must be
            the served agent's).
        env_kwargs: Its keyword arguments (which customers: ``dataset=CSV``, ``split=...``).
        episodes: Chats to play; episode ``i`` resets the env with seed ``seed + i``.
        seed: The first episode's seed.
        concurrency: Chats open at once (each its own thread, env and connection), so the
            server can batch their decisions.
        feedback: Send the env's rewards as feedback (the log's rewards).
        timeout_s: Per-request timeout.

    Returns:
        A :class:`CustomerRun`.

    Raises:
        CustomersError: A bad argument, a server that is not ready, or an answer the env
            cannot play (an unknown action name, an error status).
    """
    import httpx

    from rlagent.env_making import make_env

    for name, value, low in (("episodes", episodes, 1), ("concurrency", concurrency, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise CustomersError(f"{name}={value!r} must be an int >= {low}.")
    url = url.rstrip("/")
    try:
        health = httpx.get(f"{url}/healthz", timeout=timeout_s)
    except httpx.TransportError as exc:
        raise CustomersError(
            f"no server answers at {url} ({exc}); start one: rlagent serve MODEL"
        ) from None
    if health.status_code != 200:
        raise CustomersError(
            f"the server at {url} is not ready ({health.status_code}: {health.text[:200]}); "
            "wait for GET /healthz to answer 200."
        )
    kwargs = dict(env_kwargs or {})
    probe = make_env(env_id, kwargs)
    names = list(probe.unwrapped.action_names)
    info = httpx.get(f"{url}/v1/info", timeout=timeout_s).json()
    if info.get("kind") != "dialogue":
        raise CustomersError(
            f"the server at {url} serves {info.get('kind')!r}, not chats; play_customers talks "
            "to a served customer-service agent."
        )
    served = info.get("action_names")
    if list(served or []) != names:
        raise CustomersError(
            f"the server's action names {list(served)} are not {env_id}'s {names}: serve a model "
            "of this env, or play the env the model was trained on."
        )
    probe.close()
    workers = min(concurrency, episodes)
    start = time.perf_counter()

    def worker(slot: int) -> list[tuple[int, Any]]:
        env = make_env(env_id, kwargs)
        done = []
        with httpx.Client(base_url=url, timeout=timeout_s) as client:
            for i in range(slot, episodes, workers):
                done.append((i, _chat(client, env, names, seed + i, feedback)))
        env.close()
        return done

    with ThreadPoolExecutor(workers) as pool:
        chats = [chat for part in pool.map(worker, range(workers)) for chat in part]
    chats.sort(key=lambda item: item[0])
    results = [chat for _, chat in chats]
    return CustomerRun(
        returns=[r[0] for r in results],
        outcomes=[r[1] for r in results],
        lengths=[len(r[3]) for r in results],
        session_ids=[r[2] for r in results],
        actions=[r[3] for r in results],
        wall_time_s=time.perf_counter() - start,
    )


def _chat(
    client: Any, env: Any, names: list[str], seed: int, feedback: bool
) -> tuple[float, str, str, list[str]]:
    env.reset(seed=seed)
    session = _json(client.post("/v1/sessions"), "POST /v1/sessions")["session_id"]
    total, actions, outcome = 0.0, [], ""
    while True:
        text = _newest_customer_text(env)
        body = _json(client.post(f"/v1/sessions/{session}/turns", json={"text": text}), "turn")
        if body["action"] not in names:
            raise CustomersError(f"the server answered an unknown action {body['action']!r}.")
        actions.append(body["action"])
        _, reward, terminated, truncated, info = env.step(names.index(body["action"]))
        total += float(reward)
        if feedback:
            _json(
                client.post(
                    f"/v1/sessions/{session}/feedback",
                    json={"reward": float(reward), "step": int(body["step"])},
                ),
                "feedback",
            )
        if terminated or truncated:
            outcome = str(info.get("outcome", ""))
            break
    if feedback:
        resolved = {"resolved": outcome == "success"}
        _json(client.post(f"/v1/sessions/{session}/feedback", json=resolved), "feedback")
    _json(client.delete(f"/v1/sessions/{session}"), "DELETE session")
    return total, outcome, session, actions


def _newest_customer_text(env: Any) -> str:
    transcript = env.unwrapped.get_state().transcript
    segment = str(transcript[-1])
    if not segment.startswith(_CUSTOMER_PREFIX):
        raise CustomersError(
            f"the env's newest transcript segment {segment[:60]!r} is not the customer's; "
            "play_customers plays customer-service envs (rlagent/CustomerService-v0)."
        )
    return segment[len(_CUSTOMER_PREFIX) :]


def _json(response: Any, what: str) -> dict[str, Any]:
    if not 200 <= response.status_code < 300:
        raise CustomersError(f"{what} answered {response.status_code}: {response.text[:300]}")
    return response.json()
