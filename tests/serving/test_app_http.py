"""The HTTP app with a real (tiny) model: parity with evaluate, the log, and every bad input."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402
from tiny_models import TINY
from tiny_models import sharpen as _sharpen

import rlagent  # noqa: E402,F401  (registers the bundled envs)
from rlagent.agents import make_ppo, save_model  # noqa: E402
from rlagent.env_making import make_env  # noqa: E402
from rlagent.evaluation import evaluate  # noqa: E402
from rlagent.serving import (  # noqa: E402
    InteractionLog,
    ServeConfig,
    ServedAgent,
    build_app,
    create_app,
)

CS = "rlagent/CustomerService-v0"
REC = "rlagent/Recommendation-v0"
PREFIX = "Customer: "


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    return {
        "cs": save_model(_sharpen(make_ppo(CS, **TINY)), root / "cs"),
        "rec": save_model(_sharpen(make_ppo(REC, **TINY)), root / "rec"),
    }


@pytest.fixture(scope="module")
def cs_agent(model_dirs):
    return ServedAgent.load(model_dirs["cs"])


@pytest.fixture
def client(model_dirs, tmp_path):
    app = build_app(model_dirs["cs"], log=tmp_path / "log.db")
    with TestClient(app) as c:
        _wait_ready(c)
        yield c


def _wait_ready(c: TestClient) -> None:
    for _ in range(600):
        if c.get("/healthz").status_code == 200:
            return
        threading.Event().wait(0.05)
    raise AssertionError(c.get("/healthz").json())


class Recorder(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.episodes: list[list] = []

    def reset(self, **kwargs):
        self.episodes.append([])
        return self.env.reset(**kwargs)

    def step(self, action):
        self.episodes[-1].append(int(action))
        return self.env.step(action)


def _http_chat(c: TestClient, env: gym.Env, seed: int) -> tuple[str, list[int]]:
    names = env.unwrapped.action_names
    obs, _ = env.reset(seed=seed)
    session = c.post("/v1/sessions").json()["session_id"]
    actions = []
    while True:
        r = c.post(f"/v1/sessions/{session}/turns", json={"text": obs["dialogue"][-1][10:]})
        assert r.status_code == 200, r.json()
        body = r.json()
        action = names.index(body["action"])
        assert body["reply"] == env.unwrapped.agent_phrases[action]
        assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        assert (
            body["done"]
            == (action < len(env.unwrapped.groups) or action == names.index("escalate"))
            or truncated
        )
        if terminated or truncated:
            return session, actions


# ---------------------------------------------------------------- parity
def test_http_chats_take_the_actions_evaluate_takes(model_dirs, client):
    env = Recorder(make_env(CS, {}))
    evaluate(model_dirs["cs"], env, episodes=8, seed=40, device="cpu")
    served = [_http_chat(client, make_env(CS, {}), 40 + i)[1] for i in range(8)]
    assert served == env.episodes
    assert len({a for episode in served for a in episode}) >= 2


def test_concurrent_chats_share_forward_passes_and_keep_parity(model_dirs, tmp_path):
    env = Recorder(make_env(CS, {}))
    evaluate(model_dirs["cs"], env, episodes=12, seed=70, device="cpu")
    config = ServeConfig(max_batch=8, max_wait_ms=20.0)
    app = build_app(model_dirs["cs"], log=tmp_path / "log.db", config=config)
    with TestClient(app) as c:
        _wait_ready(c)
        with ThreadPoolExecutor(6) as pool:
            served = list(pool.map(lambda i: _http_chat(c, make_env(CS, {}), 70 + i), range(12)))
        metrics = c.get("/metrics").text
    assert [actions for _, actions in served] == env.episodes
    sizes = re.search(r"rlagent_batch_size_count (\d+)", metrics)
    total = sum(len(a) for _, a in served)
    assert int(re.search(r"rlagent_decisions_total (\d+)", metrics).group(1)) == total
    assert int(sizes.group(1)) < total  # some forward passes held several decisions


def test_every_acknowledged_decision_is_in_the_log(model_dirs, tmp_path):
    path = tmp_path / "log.db"
    with TestClient(build_app(model_dirs["cs"], log=path)) as c:
        _wait_ready(c)
        session, actions = _http_chat(c, make_env(CS, {}), 3)
        r = c.post(f"/v1/sessions/{session}/feedback", json={"resolved": True, "rating": 5})
        assert r.status_code == 200 and r.json()["logged"] is True
        assert c.delete(f"/v1/sessions/{session}").json() == {"session_id": session, "ended": True}
    log = InteractionLog.for_reading(path)
    rows = log.decisions(session)
    names = make_env(CS, {}).unwrapped.action_names
    assert [names.index(r.action_name) for r in rows] == actions
    assert [r.step for r in rows] == list(range(len(actions)))
    assert all(r.propensity == 1.0 for r in rows)
    assert rows[0].observation_text.startswith(PREFIX)
    (fb,) = log.feedback(session)
    assert (fb.resolved, fb.rating) == (True, 5)
    assert log.session(session).end_reason == "ended by client"


def test_slates_over_http(model_dirs, tmp_path):
    kwargs = {"budget": 30.0, "n_items": 200}
    env = make_env(REC, kwargs)
    obs, _ = env.reset(seed=1)
    app = build_app(model_dirs["rec"], env_kwargs=kwargs, log=tmp_path / "log.db")
    with TestClient(app) as c:
        _wait_ready(c)
        sid = c.post("/v1/sessions").json()["session_id"]
        body = {"candidates": list(obs["candidates"]), "history": []}
        r = c.post(f"/v1/sessions/{sid}/recommend", json=body)
        assert r.status_code == 200, r.json()
        slate = r.json()["slate"]
        agent = ServedAgent.load(model_dirs["rec"], env_kwargs=kwargs)
        live = agent.new_session()
        expected = agent.decide([live.observation(list(obs["candidates"]), [])])[0].action
        assert slate == [int(a) for a in np.atleast_1d(expected)]
        assert c.post(f"/v1/sessions/{sid}/click", json={"candidate": slate[0]}).json()["recorded"]
        r = c.post(f"/v1/sessions/{sid}/click", json={"candidate": slate[0]})
        assert r.status_code == 409 and "no slate to click yet" in r.json()["error"]


# ---------------------------------------------------------------- health and metrics
def test_healthz_is_503_until_the_model_is_loaded(cs_agent):
    gate = threading.Event()

    def slow_load():
        gate.wait(30)
        return cs_agent

    with TestClient(create_app(slow_load)) as c:
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = c.post("/v1/sessions")
        assert r.status_code == 503 and "still loading" in r.json()["error"]
        gate.set()
        _wait_ready(c)
        body = c.get("/healthz").json()
        assert body["status"] == "ok" and body["model_hash"] == cs_agent.model_hash


def test_a_model_that_fails_to_load_is_reported(tmp_path):
    (tmp_path / "model").mkdir()
    app = build_app(tmp_path / "model", log=None)
    with TestClient(app) as c:
        for _ in range(200):
            r = c.get("/healthz")
            if r.json()["status"] == "failed":
                break
            threading.Event().wait(0.05)
        assert r.status_code == 503 and r.json()["status"] == "failed"
        assert "failed to load" in c.post("/v1/sessions").json()["error"]


def test_metrics_are_prometheus_text(client):
    sid = client.post("/v1/sessions").json()["session_id"]
    client.post(f"/v1/sessions/{sid}/turns", json={"text": "my card has not arrived"})
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "# TYPE rlagent_request_seconds histogram" in text
    assert re.search(
        r'rlagent_requests_total\{method="POST",route="/v1/sessions/\{session_id\}/turns",'
        r'status="200"\} 1',
        text,
    )
    assert "rlagent_sessions 1" in text


def test_session_ids_are_unguessable(client):
    ids = {client.post("/v1/sessions").json()["session_id"] for _ in range(20)}
    assert len(ids) == 20 and all(len(i) >= 32 for i in ids)


def test_text_outside_the_charset_is_cleaned_not_refused(client):
    sid = client.post("/v1/sessions").json()["session_id"]
    r = client.post(f"/v1/sessions/{sid}/turns", json={"text": "My café card 💳 hasn’t come"})
    assert r.status_code == 200, r.json()


# ---------------------------------------------------------------- bad input
BAD = [
    (
        "unknown session",
        "post",
        "/v1/sessions/nope/turns",
        {"json": {"text": "hi"}},
        404,
        "unknown session id: it was never created, was ended, or expired",
    ),
    (
        "empty text",
        "post",
        "/v1/sessions/{sid}/turns",
        {"json": {"text": "  "}},
        422,
        "text is empty; send what the customer wrote",
    ),
    (
        "oversized text",
        "post",
        "/v1/sessions/{sid}/turns",
        {"json": {"text": "a" * 2001}},
        422,
        "text is 2001 characters; the limit is 2000 (max_text_chars)",
    ),
    (
        "malformed JSON",
        "post",
        "/v1/sessions/{sid}/turns",
        {"content": b'{"text": ', "headers": {"content-type": "application/json"}},
        422,
        "malformed JSON body",
    ),
    (
        "missing field",
        "post",
        "/v1/sessions/{sid}/turns",
        {"json": {}},
        422,
        "invalid request: missing field 'text'",
    ),
    (
        "unknown field",
        "post",
        "/v1/sessions/{sid}/turns",
        {"json": {"text": "hi", "x": 1}},
        422,
        "invalid request: unknown field 'x'",
    ),
    ("not an object", "post", "/v1/sessions/{sid}/turns", {"json": ["hi"]}, 422, "invalid request"),
    (
        "body too large",
        "post",
        "/v1/sessions/{sid}/turns",
        {"content": b"x" * 300_000, "headers": {"content-type": "application/json"}},
        413,
        "the request body is 300000 bytes; the limit is 262144",
    ),
    (
        "wrong route for the kind",
        "post",
        "/v1/sessions/{sid}/recommend",
        {"json": {"candidates": ["a"]}},
        409,
        "this server's agent is a 'dialogue' agent, which has no 'recommend' route",
    ),
    (
        "empty feedback",
        "post",
        "/v1/sessions/{sid}/feedback",
        {"json": {}},
        422,
        'feedback needs at least one of "reward"',
    ),
    (
        "rating out of range",
        "post",
        "/v1/sessions/{sid}/feedback",
        {"json": {"rating": 9}},
        422,
        "invalid request: rating:",
    ),
    (
        "feedback, unknown session",
        "post",
        "/v1/sessions/nope/feedback",
        {"json": {"reward": 1.0}},
        404,
        "unknown session id",
    ),
    ("delete unknown", "delete", "/v1/sessions/nope", {}, 404, "unknown session id"),
    ("no such route", "get", "/v2/nothing", {}, 404, "no such route; see GET /docs"),
    ("wrong method", "get", "/v1/sessions", {}, 405, "method not allowed on this route"),
]


@pytest.mark.parametrize(
    ("case", "method", "url", "kwargs", "status", "message"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_input_gets_a_4xx_with_a_json_message(
    client, case, method, url, kwargs, status, message
):
    sid = client.post("/v1/sessions").json()["session_id"]
    r = getattr(client, method)(url.format(sid=sid), **kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_a_turn_after_an_escalation_is_refused(client, cs_agent):
    sid = client.post("/v1/sessions").json()["session_id"]
    session_text = "my card has not arrived"
    # Drive the session to an escalation through the live session the app holds.
    live = client.app.state.holder["state"].sessions.get(sid).live
    live.customer(session_text)
    live.act(cs_agent.action_names.index("escalate"))
    r = client.post(f"/v1/sessions/{sid}/turns", json={"text": "hello?"})
    assert r.status_code == 422 and "ended" in r.json()["error"]


def test_wrong_candidate_count_is_refused(model_dirs, tmp_path):
    kwargs = {"budget": 30.0, "n_items": 200}
    with TestClient(build_app(model_dirs["rec"], env_kwargs=kwargs, log=None)) as c:
        _wait_ready(c)
        sid = c.post("/v1/sessions").json()["session_id"]
        r = c.post(f"/v1/sessions/{sid}/recommend", json={"candidates": ["a", "b"]})
        assert r.status_code == 422 and "10" in r.json()["error"], r.json()
        r = c.post(f"/v1/sessions/{sid}/click", json={"candidate": 1})
        assert r.status_code == 409 and "no slate to click yet" in r.json()["error"]


def test_the_server_binds_to_localhost_by_default():
    import inspect

    from rlagent.serving import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
