"""kill -9 of ``rlagent serve`` under load loses no decision a client got an answer for."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tiny_models import TINY  # noqa: E402

from rlagent.agents import make_ppo, save_model  # noqa: E402
from rlagent.serving import InteractionLog  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CS = "rlagent/CustomerService-v0"
CLIENTS = 6
#: Answers the clients must hold before the kill (the kill lands while more are in flight).
ACKNOWLEDGED_BEFORE_KILL = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """``rlagent serve`` of a tiny model in a subprocess, always killed at the end."""
    model = save_model(make_ppo(CS, **TINY), tmp_path / "model")
    log = tmp_path / "interactions.db"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["OMP_NUM_THREADS"] = "1"
    output = open(tmp_path / "server.out", "wb")  # noqa: SIM115 - closed by the finalizer
    command = [sys.executable, "-m", "rlagent.cli", "serve", str(model)]
    command += ["--log", str(log), "--port", str(port), "--max-batch", "4"]
    proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "server.out").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        output.close()


def _client(url: str, acknowledged: list, lock: threading.Lock, stop: threading.Event) -> None:
    """Chats until the server dies; records each decision it got an answer for."""
    texts = ["my card has not arrived", "I was charged twice", "how do I top up", "thanks"]
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
        session, turn = None, 0
        while not stop.is_set():
            try:
                if session is None:
                    session, turn = http.post("/v1/sessions").json()["session_id"], 0
                text = f"{texts[turn % len(texts)]} (ref {turn})"
                response = http.post(f"/v1/sessions/{session}/turns", json={"text": text})
            except (httpx.HTTPError, ValueError):
                return  # the server is gone
            if response.status_code != 200:  # the chat ended for good: a new one
                session = None
                continue
            body = response.json()
            with lock:
                acknowledged.append((session, body["step"], body["action"]))
            turn += 1
            if turn == 8:
                session = None


def test_sigkill_under_load_loses_no_acknowledged_decision(server):
    proc, url, log_path = server
    acknowledged: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_client, args=(url, acknowledged, lock, stop), daemon=True)
        for _ in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < ACKNOWLEDGED_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-load: every client has a turn in flight or about to
    proc.wait(timeout=30)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL, "the clients got too few answers"

    conn = sqlite3.connect(log_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    log = InteractionLog.for_reading(log_path)
    try:
        stored = {(d.session_id, d.step): d.action_name for d in log.decisions()}
    finally:
        log.close()
    missing = [ack for ack in acknowledged if stored.get(ack[:2]) != ack[2]]
    assert not missing, f"answered but not in the log (or with another action): {missing[:5]}"
    assert len({ack[0] for ack in acknowledged}) >= CLIENTS
