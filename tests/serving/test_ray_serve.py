"""The app on Ray Serve: replica apps (no Ray), argument checks, the CLI, and a live deployment.

The live deployment starts a local Ray instance once for the module (about a minute on a
shared 2-core machine) and runs two replicas of a tiny-encoder model behind Ray Serve's HTTP
proxy, so that session affinity and the per-replica logs are exercised for real.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import uuid

import gymnasium as gym
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402
from tiny_models import TINY, sharpen  # noqa: E402

import rlagent  # noqa: E402,F401  (registers the bundled envs)
from rlagent.agents import ModelFileError, make_ppo, save_model  # noqa: E402
from rlagent.cli import main  # noqa: E402
from rlagent.env_making import make_env  # noqa: E402
from rlagent.evaluation import evaluate  # noqa: E402
from rlagent.serving import (  # noqa: E402
    InteractionLog,
    ServeConfig,
    ServedAgent,
    ServingConfigError,
)
from rlagent.serving.ray_serve import (  # noqa: E402
    REPLICA_HEADER,
    deployment,
    replica_app,
    replica_log_path,
)

CS = "rlagent/CustomerService-v0"
HEADER = "x-session-id"
HAS_SERVE = importlib.util.find_spec("ray") is not None and (
    importlib.util.find_spec("ray.serve") is not None
)
pytestmark = pytest.mark.timeout(600)  # the live deployment starts Ray: about a minute
needs_serve = pytest.mark.skipif(
    not HAS_SERVE, reason="ray[serve] is not installed (pip install 'rlagent[ray-serve]')"
)


def _refusal(n: int) -> str:
    return (
        f"this service runs {n} replicas and keeps each session in the memory of one of them: "
        f"send the header '{HEADER}: KEY' with POST /v1/sessions and with every request about "
        "that session, one KEY of your choosing per session (e.g. a random UUID), so that every "
        "request of the session reaches the same replica."
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = sharpen(make_ppo(CS, **TINY))  # an untrained policy whose choices differ by input
    return save_model(model, tmp_path_factory.mktemp("ray") / "cs")


# ---------------------------------------------------------------- one replica's app, no Ray
def test_replica_log_path_keeps_the_suffix(tmp_path):
    assert replica_log_path(tmp_path / "log.db", 3) == tmp_path / "log.replica-3.db"
    assert str(replica_log_path("interactions", "ab12")) == "interactions.replica-ab12"


def test_a_single_replica_app_needs_no_session_header(model_dir, tmp_path):
    path = tmp_path / "log.db"
    with TestClient(replica_app(model_dir, replica=0, log=path)) as c:
        r = c.get("/healthz")  # loaded eagerly: ready at once
        assert r.status_code == 200 and r.headers[REPLICA_HEADER] == "0"
        sid = c.post("/v1/sessions").json()["session_id"]
        r = c.post(f"/v1/sessions/{sid}/turns", json={"text": "my card has not arrived"})
        assert r.status_code == 200, r.json()
    assert len(InteractionLog.for_reading(path).decisions(sid)) == 1


def test_several_replicas_refuse_sessions_without_the_affinity_header(model_dir, tmp_path):
    app = replica_app(model_dir, replica=1, num_replicas=3, log=tmp_path / "log.db")
    with TestClient(app) as c:
        r = c.post("/v1/sessions")
        assert r.status_code == 428
        assert r.json() == {"error": _refusal(3), "kind": "SessionAffinityError"}
        r = c.post("/v1/sessions/abc/turns", json={"text": "hi"})
        assert r.status_code == 428 and r.headers[REPLICA_HEADER] == "1"
        assert c.get("/healthz").status_code == 200  # other routes need no header
        key = {HEADER.replace("-", "_"): "k1"}  # proxies may swap - and _
        sid = c.post("/v1/sessions", headers=key).json()["session_id"]
        r = c.post(f"/v1/sessions/{sid}/turns", json={"text": "lost card"}, headers=key)
        assert r.status_code == 200, r.json()
    assert not (tmp_path / "log.db").exists()
    log = InteractionLog.for_reading(tmp_path / "log.replica-1.db")
    assert len(log.decisions(sid)) == 1


# ---------------------------------------------------------------- arguments and the CLI
@needs_serve
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_replicas": 0}, "num_replicas=0 must be an int >= 1."),
        ({"num_cpus": 0}, "num_cpus=0 must be > 0 (fractions allowed)."),
        ({"max_ongoing_requests": 0}, "max_ongoing_requests=0 must be >= 1."),
    ],
)
def test_bad_deployment_settings_are_refused(model_dir, kwargs, message):
    with pytest.raises(ServingConfigError, match=re.escape(message)):
        deployment(model_dir, **kwargs)


@needs_serve
def test_a_missing_model_is_refused_before_ray_deploys(tmp_path):
    with pytest.raises(ServingConfigError, match=re.escape("does not exist; pass the model")):
        deployment(tmp_path / "nope")


@needs_serve
def test_a_folder_that_is_not_a_model_is_refused_before_ray_deploys(tmp_path):
    with pytest.raises(ModelFileError, match=re.escape(f"{tmp_path} has no manifest.json")):
        deployment(tmp_path)


def test_cli_replicas_need_ray(model_dir, capsys):
    assert main(["serve", str(model_dir), "--replicas", "2"]) == 2
    assert "--replicas 2 needs --ray" in capsys.readouterr().err


def test_cli_ray_calls_the_library(model_dir, monkeypatch):
    import rlagent.serving.ray_serve as ray_serve

    calls = []
    monkeypatch.setattr(ray_serve, "serve_on_ray", lambda model, **kw: calls.append((model, kw)))
    argv = ["serve", str(model_dir), "--ray", "--replicas", "2", "--port", "8123", "--no-log"]
    assert main([*argv, "--max-batch", "4"]) == 0
    ((model, kw),) = calls
    assert model == str(model_dir) and kw["replicas"] == 2 and kw["port"] == 8123
    assert kw["log"] is None and kw["config"] == ServeConfig(max_batch=4)


# ---------------------------------------------------------------- a live Ray Serve deployment
@pytest.fixture(scope="module")
def ray_service(model_dir, tmp_path_factory):
    """Two replicas on a local Ray instance: ``(base_url, log_path)``."""
    if not HAS_SERVE:
        pytest.skip("ray[serve] is not installed (pip install 'rlagent[ray-serve]')")
    import ray
    from ray import serve

    from rlagent.serving.ray_serve import _runtime_env

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    log = tmp_path_factory.mktemp("ray-log") / "log.db"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024**2,
        runtime_env=_runtime_env(),
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = deployment(model_dir, log=log, num_replicas=2, num_cpus=0.5)
        serve.run(app, name="rlagent", route_prefix="/", blocking=False)
        yield f"http://127.0.0.1:{port}", log
    finally:
        serve.shutdown()
        ray.shutdown()


class Recorder(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.episodes: list[list[int]] = []

    def reset(self, **kwargs):
        self.episodes.append([])
        return self.env.reset(**kwargs)

    def step(self, action):
        self.episodes[-1].append(int(action))
        return self.env.step(action)


def _chat(c, seed: int) -> tuple[str, str, list[int]]:
    """One seeded episode through the API: ``(session id, replica, actions)``."""
    env = make_env(CS, {})
    names = env.unwrapped.action_names
    obs, _ = env.reset(seed=seed)
    key = {HEADER: str(uuid.uuid4())}
    r = c.post("/v1/sessions", headers=key)
    assert r.status_code == 201, r.json()
    sid, replicas, actions = r.json()["session_id"], {r.headers[REPLICA_HEADER]}, []
    while True:
        text = obs["dialogue"][-1][len("Customer: ") :]
        r = c.post(f"/v1/sessions/{sid}/turns", json={"text": text}, headers=key)
        assert r.status_code == 200, r.json()
        replicas.add(r.headers[REPLICA_HEADER])
        body = r.json()
        assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        actions.append(names.index(body["action"]))
        obs, _, terminated, truncated, _ = env.step(actions[-1])
        if terminated or truncated:
            assert c.delete(f"/v1/sessions/{sid}", headers=key).status_code == 200
            (replica,) = replicas  # every request of the session reached one replica
            return sid, replica, actions


def test_ray_serve_answers_like_evaluate_and_logs_per_replica(ray_service, model_dir):
    base, log = ray_service
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.get("/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert r.json()["model_hash"] == ServedAgent.load(model_dir).model_hash
        r = c.post("/v1/sessions")
        assert r.status_code == 428 and r.json()["error"] == _refusal(2)
        served = [_chat(c, 40 + i) for i in range(4)]
    env = Recorder(make_env(CS, {}))
    evaluate(model_dir, env, episodes=4, seed=40, device="cpu")
    assert [actions for _, _, actions in served] == env.episodes
    for sid, replica, actions in served:
        rows = InteractionLog.for_reading(replica_log_path(log, replica)).decisions(sid)
        assert [r.step for r in rows] == list(range(len(actions)))
    assert not log.exists()  # several replicas: one file each, never the shared path
