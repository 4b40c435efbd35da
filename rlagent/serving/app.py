"""The HTTP service: a FastAPI app around a :class:`~rlagent.serving.ServedAgent`.

:func:`create_app` builds the app; ``rlagent serve`` runs it with uvicorn. Every decision goes
through one :class:`~rlagent.serving.batching.MicroBatcher`, which runs the model on a batch
of waiting requests and writes the batch to the interaction log before any of them is
answered: a client never holds a decision the log lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rlagent.serving.batching import MicroBatcher
from rlagent.serving.config import ServeConfig
from rlagent.serving.errors import (
    LiveInputError,
    ServingConfigError,
    SessionInputError,
    SessionLimitError,
    SessionStateError,
    UnknownSessionError,
)
from rlagent.serving.metrics import ServiceMetrics
from rlagent.serving.sessions import Session, SessionStore
from rlagent.serving.web import mount_pages, n_candidates

__all__ = ["create_app"]

_STATUS: dict[type[Exception], int] = {
    UnknownSessionError: 404,
    LiveInputError: 422,
    SessionInputError: 422,
    SessionStateError: 409,
    SessionLimitError: 429,
    ServingConfigError: 400,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TurnIn(_Strict):
    """What the customer wrote."""

    text: str


class RecommendIn(_Strict):
    """The candidates to choose a slate from, and what the user chose before."""

    candidates: list[str]
    history: list[str] | None = None
    popularity: list[float] | None = None


class ClickIn(_Strict):
    """The user's choice from the latest slate: a candidate index, or null for none."""

    candidate: int | None = None
    minutes: float | None = Field(default=None, ge=0)


class FeedbackIn(_Strict):
    """Feedback on a session (or on one of its steps)."""

    reward: float | None = None
    resolved: bool | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    step: int | None = Field(default=None, ge=0)


@dataclass
class _Pending:
    session_id: str
    step: int
    observation: Mapping[str, Any]
    mask: np.ndarray | None
    live: Any = None


class _State:
    """What the app holds once the model is loaded."""

    def __init__(self, agent: Any, log: Any, config: ServeConfig, metrics: ServiceMetrics):
        self.agent = agent
        self.log = log
        self.config = config
        self.metrics = metrics
        self.sessions = SessionStore(ttl_s=config.session_ttl_s, max_sessions=config.max_sessions)
        self.clean = _text_cleaner(agent)
        self.batcher: MicroBatcher[_Pending, Any] = MicroBatcher(
            self._process,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            on_batch=metrics.batch,
        )

    def _process(self, items: list[_Pending]) -> list[Any]:
        decisions = self.agent.decide([i.observation for i in items], [i.mask for i in items])
        # The greedy policy (or the planner) chose deterministically; an exploring agent
        # sampled with the probability its decision reports.
        exploring = getattr(self.agent, "exploration", None) is not None
        if self.log is not None:
            from rlagent.serving.interaction_log import DecisionRecord

            now = time.time()
            self.log.record_decisions(
                [
                    DecisionRecord(
                        session_id=i.session_id,
                        step=i.step,
                        time=now,
                        observation=i.observation,
                        observation_text=observation_text(i.observation),
                        action=d.action,
                        action_name=d.action_name,
                        probabilities=d.probabilities,
                        planner=self.agent.settings.get("planner"),
                        model_hash=self.agent.model_hash,
                        propensity=d.probability if exploring else 1.0,
                    )
                    for i, d in zip(items, decisions, strict=True)
                ]
            )
        return decisions


def observation_text(observation: Mapping[str, Any]) -> str:
    """The text of an observation, one non-empty segment per line (for people reading logs)."""
    lines: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if value:
                lines.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, tuple | list):
            for v in value:
                walk(v)

    walk(observation)
    return "\n".join(dict.fromkeys(lines))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        kind = err.get("type", "")
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if kind == "json_invalid":
            return (
                "malformed JSON body: "
                f"{err.get('ctx', {}).get('error', err.get('msg', ''))}; send a JSON object, "
                'e.g. {"text": "my card has not arrived"}.'
            )
        if kind == "missing":
            parts.append(f"missing field {where!r}")
        elif kind == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        elif kind == "model_attributes_type":
            parts.append("the body must be a JSON object")
        else:
            parts.append(f"{where or 'body'}: {err.get('msg', kind)}")
    return "invalid request: " + "; ".join(parts)


def create_app(
    agent: Any | Callable[[], Any],
    *,
    log: Any | Callable[[Any], Any] | None = None,
    config: ServeConfig | None = None,
) -> FastAPI:
    """Build the service around an agent.

    Args:
        agent: A :class:`~rlagent.serving.ServedAgent`, or a no-argument callable returning
            one, called in a thread when the server starts (``GET /healthz`` answers 503
            until it returns).
        log: An :class:`~rlagent.serving.InteractionLog`, a callable taking the agent and
            returning one (opened once the agent is loaded), or ``None`` to log nothing.
        config: Batching, session and input limits; ``None`` for the defaults.

    Returns:
        The FastAPI app; run it with uvicorn (``rlagent serve`` does).
    """
    config = config or ServeConfig()
    metrics = ServiceMetrics()
    holder: dict[str, Any] = {"state": None, "error": None}

    async def _load() -> None:
        try:
            loaded = agent() if callable(agent) and not hasattr(agent, "decide") else agent
            if asyncio.iscoroutine(loaded):  # pragma: no cover - defensive
                loaded = await loaded
            opened = log(loaded) if callable(log) and not hasattr(log, "record_decisions") else log
            state = _State(loaded, opened, config, metrics)
            await state.batcher.start()
            holder["state"] = state
        except Exception as exc:  # noqa: BLE001 - reported by /healthz
            holder["error"] = f"{type(exc).__name__}: {exc}"
            raise

    async def _sweep() -> None:
        while True:
            await asyncio.sleep(config.expire_every_s)
            state = holder["state"]
            if state is None:
                continue
            for session in state.sessions.expire():
                await _end(state, session, "expired")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if callable(agent) and not hasattr(agent, "decide"):
            loader = asyncio.get_running_loop().create_task(_load_in_thread())
        else:
            await _load()
            loader = None
        sweeper = asyncio.get_running_loop().create_task(_sweep())
        try:
            yield
        finally:
            sweeper.cancel()
            if loader is not None:
                loader.cancel()
            state = holder["state"]
            if state is not None:
                await state.batcher.stop()
                if state.log is not None:
                    state.log.close()

    async def _load_in_thread() -> None:
        try:
            loaded = await asyncio.to_thread(agent)
            opened = (
                await asyncio.to_thread(log, loaded)
                if callable(log) and not hasattr(log, "record_decisions")
                else log
            )
            state = _State(loaded, opened, config, metrics)
            await state.batcher.start()
            holder["state"] = state
        except Exception as exc:  # noqa: BLE001 - reported by /healthz
            holder["error"] = f"{type(exc).__name__}: {exc}"

    app = FastAPI(
        title="rlagent",
        summary="A trained text agent, served: sessions, decisions with their probabilities, "
        "feedback.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.holder = holder

    def ready() -> _State:
        state = holder["state"]
        if state is None:
            raise _NotReady(holder["error"])
        return state

    # ------------------------------------------------------------------ errors
    @app.exception_handler(_NotReady)
    async def _not_ready(_: Request, exc: _NotReady) -> JSONResponse:
        if exc.reason:
            return _error(503, f"the model failed to load: {exc.reason}")
        return _error(503, "the model is still loading; retry shortly (GET /healthz).")

    for cls, status in _STATUS.items():

        async def _handler(_: Request, exc: Exception, status: int = status) -> JSONResponse:
            return _error(status, str(exc), kind=type(exc).__name__)

        app.add_exception_handler(cls, _handler)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc), kind="RequestValidationError")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no such route; see GET /docs for the API ({message})"
        elif exc.status_code == 405:
            message = f"method not allowed on this route ({message})"
        return _error(exc.status_code, message)

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Any]) -> Response:
        start = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
            response: Response = _error(
                413,
                f"the request body is {int(length)} bytes; the limit is "
                f"{config.max_body_bytes} (max_body_bytes).",
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.request(request.method, path, response.status_code, time.perf_counter() - start)
        return response

    # ------------------------------------------------------------------ routes
    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        state = holder["state"]
        if state is None:
            status = "failed" if holder["error"] else "loading"
            return JSONResponse({"status": status, "error": holder["error"]}, status_code=503)
        return JSONResponse({"status": "ok", **_info(state)})

    @app.get("/metrics")
    async def metrics_text() -> PlainTextResponse:
        state = holder["state"]
        metrics.sessions = len(state.sessions) if state is not None else 0
        return PlainTextResponse(
            metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        return _info(ready())

    @app.post("/v1/sessions", status_code=201)
    async def new_session() -> dict[str, Any]:
        state = ready()
        session = state.sessions.create(state.agent.new_session())
        if state.log is not None:
            await asyncio.to_thread(
                state.log.start_session, session.session_id, kind=state.agent.kind
            )
        return {
            "session_id": session.session_id,
            "kind": state.agent.kind,
            "action_names": list(state.agent.action_names),
        }

    @app.post("/v1/sessions/{session_id}/turns")
    async def turn(session_id: str, body: TurnIn) -> dict[str, Any]:
        state = ready()
        session = state.sessions.get(session_id)
        _expect(state, "dialogue", "turns")
        text = body.text
        if not text.strip():
            raise SessionInputError(
                'text is empty; send what the customer wrote, e.g. {"text": "my card has not '
                'arrived"}.'
            )
        if len(text) > config.max_text_chars:
            raise SessionInputError(
                f"text is {len(text)} characters; the limit is {config.max_text_chars} "
                "(max_text_chars). Send a shorter message."
            )
        async with session.lock:
            live = session.live
            live.customer(state.clean(text))
            decision = await state.batcher.submit(
                _Pending(session_id, session.step, live.observation(), live.action_masks(), live)
            )
            reply = live.act(decision.action)
            step = session.step
            session.step += 1
            return {
                "session_id": session_id,
                "step": step,
                "action": decision.action_name,
                "reply": reply,
                "probabilities": _jsonable(decision.probabilities),
                "value": _maybe_float(decision.value),
                "done": bool(live.done),
            }

    @app.post("/v1/sessions/{session_id}/recommend")
    async def recommend(session_id: str, body: RecommendIn) -> dict[str, Any]:
        state = ready()
        session = state.sessions.get(session_id)
        _expect(state, "slate", "recommend")
        too_long = [i for i, c in enumerate(body.candidates) if len(c) > config.max_text_chars]
        if too_long:
            raise SessionInputError(
                f"candidate {too_long[0]} is {len(body.candidates[too_long[0]])} characters; "
                f"the limit is {config.max_text_chars} (max_text_chars)."
            )
        async with session.lock:
            live = session.live
            observation = live.observation(body.candidates, body.history, body.popularity)
            decision = await state.batcher.submit(
                _Pending(session_id, session.step, observation, None, live)
            )
            slate = [int(a) for a in np.atleast_1d(decision.action)]
            session.slate = slate  # type: ignore[attr-defined]
            step = session.step
            session.step += 1
            return {
                "session_id": session_id,
                "step": step,
                "slate": slate,
                "items": [body.candidates[i] for i in slate],
                "probabilities": _jsonable(decision.probabilities),
                "value": _maybe_float(decision.value),
            }

    @app.post("/v1/sessions/{session_id}/click")
    async def click(session_id: str, body: ClickIn) -> dict[str, Any]:
        state = ready()
        session = state.sessions.get(session_id)
        _expect(state, "slate", "click")
        async with session.lock:
            slate = getattr(session, "slate", None)
            if slate is None:
                raise SessionStateError(
                    "no slate to click yet; ask for one first with POST "
                    "/v1/sessions/{id}/recommend."
                )
            if body.candidate is not None and body.candidate not in slate:
                raise SessionInputError(
                    f"candidate {body.candidate} was not in the latest slate {slate}; send one "
                    "of those candidate indices, or null for no click."
                )
            session.live.record(slate, body.candidate, body.minutes)
            session.slate = None  # type: ignore[attr-defined]
            if state.log is not None:
                await asyncio.to_thread(
                    state.log.record_event,
                    session_id,
                    "click",
                    {
                        "step": session.step - 1,
                        "candidate": body.candidate,
                        "slate": slate,
                        "minutes": body.minutes,
                    },
                )
            return {"session_id": session_id, "recorded": True}

    @app.post("/v1/sessions/{session_id}/feedback")
    async def feedback(session_id: str, body: FeedbackIn) -> dict[str, Any]:
        state = ready()
        state.sessions.get(session_id)
        if body.reward is None and body.resolved is None and body.rating is None:
            raise SessionInputError(
                'feedback needs at least one of "reward" (a number), "resolved" (true/false) '
                'or "rating" (1-5), e.g. {"resolved": true, "rating": 5}.'
            )
        if body.reward is not None and not np.isfinite(body.reward):
            raise SessionInputError(f"reward={body.reward!r} must be a finite number.")
        feedback_id = None
        if state.log is not None:
            feedback_id = await asyncio.to_thread(
                state.log.record_feedback,
                session_id,
                step=body.step,
                reward=body.reward,
                resolved=body.resolved,
                rating=body.rating,
            )
        return {"session_id": session_id, "logged": state.log is not None, "id": feedback_id}

    @app.delete("/v1/sessions/{session_id}")
    async def end_session(session_id: str) -> dict[str, Any]:
        state = ready()
        session = state.sessions.remove(session_id)
        await _end(state, session, "ended by client")
        return {"session_id": session_id, "ended": True}

    # ------------------------------------------------------------------ pages for people
    mount_pages(app, ready)
    return app


class _NotReady(Exception):
    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


async def _end(state: _State, session: Session, reason: str) -> None:
    if state.log is not None:
        await asyncio.to_thread(state.log.end_session, session.session_id, reason)


def _info(state: _State) -> dict[str, Any]:
    agent = state.agent
    return {
        "kind": agent.kind,
        "model_hash": agent.model_hash,
        "action_names": list(agent.action_names),
        "settings": _jsonable(dict(agent.settings)),
        "n_candidates": n_candidates(agent),
        "logging": state.log is not None,
        "max_batch": state.config.max_batch,
        "sessions": len(state.sessions),
    }


def _expect(state: _State, kind: str, route: str) -> None:
    if state.agent.kind != kind:
        other = "turns" if state.agent.kind == "dialogue" else "recommend"
        raise SessionStateError(
            f"this server's agent is a {state.agent.kind!r} agent, which has no {route!r} "
            f"route; use POST /v1/sessions/{{id}}/{other}."
        )


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _text_cleaner(agent: Any) -> Callable[[str], str]:
    """Maps what people type into the characters the served env's text spaces allow.

    Text already inside the charset passes unchanged (so replayed env text is decided on as the
    env wrote it); otherwise accents are stripped, runs of whitespace become one space and
    other characters (emoji, symbols) are dropped.
    """
    from gymnasium import spaces

    charset: frozenset[str] | None = None
    stack = [getattr(getattr(agent, "env", None), "observation_space", None)]
    while stack and charset is None:
        space = stack.pop()
        if isinstance(space, spaces.Text):
            charset = frozenset(space.character_set)
        elif isinstance(space, spaces.Dict | spaces.Tuple):
            stack.extend(space.spaces.values() if isinstance(space, spaces.Dict) else space)
    if charset is None:
        return lambda text: text

    def clean(text: str) -> str:
        if all(c in charset for c in text):
            return text
        text = " ".join(unicodedata.normalize("NFKD", text).split())
        return "".join(c for c in text if c in charset)

    return clean
