"""The load side of ``rlagent bench serve``: a server subprocess and asyncio clients.

:class:`ServerProcess` runs ``rlagent serve`` (``python -m rlagent.cli serve``) in its own
process on the loopback address, so that the server and the load generator never share an
interpreter lock; :func:`drive` sends a bounded number of turns from ``clients`` concurrent
sessions with ``httpx.AsyncClient`` and times each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlagent.serving.errors import ServingError

__all__ = ["LoadResult", "ServeBenchError", "ServerProcess", "drive", "free_port"]

_REPO = Path(__file__).resolve().parents[2]


class ServeBenchError(ServingError, RuntimeError):
    """``rlagent bench serve`` could not measure (a server did not start, or answered nothing).

    The message says what the server printed.
    """


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(
    model: str | os.PathLike,
    *,
    port: int,
    log: str | os.PathLike | None,
    env_id: str | None = None,
    max_batch: int,
    max_wait_ms: float,
    encoder_dtype: str | None = None,
) -> list[str]:
    """The ``rlagent serve`` command line of one benchmarked server."""
    command = [sys.executable, "-m", "rlagent.cli", "serve", os.fspath(model)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-log"] if log is None else ["--log", os.fspath(log)]
    command += ["--max-batch", str(max_batch), "--max-wait-ms", f"{max_wait_ms:g}"]
    if env_id is not None:
        command += ["--env", env_id]
    if encoder_dtype is not None:
        command += ["--encoder-dtype", encoder_dtype]
    return command


def child_env(threads: int | None) -> dict[str, str]:
    """The environment of a server process: this one's, this rlagent first on the path."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.fspath(_REPO) + (os.pathsep + path if path else "")
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    return env


class ServerProcess:
    """``rlagent serve`` in a subprocess: started on enter, stopped on exit.

    Enter several, then :meth:`wait_ready` on each: they load their models side by side.

    Args:
        command: The command line (:func:`serve_command`).
        port: The port it listens on.
        output: File that receives the server's stdout and stderr.
        threads: ``OMP_NUM_THREADS`` of the server (torch's intra-op threads); ``None``
            keeps this process's setting.
        start_timeout_s: Longest wait for ``GET /healthz`` to answer 200.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        output: str | os.PathLike,
        threads: int | None = None,
        start_timeout_s: float = 180.0,
    ) -> None:
        self.command = list(command)
        self.url = f"http://127.0.0.1:{port}"
        self.output = Path(output)
        self.threads = threads
        self.start_timeout_s = float(start_timeout_s)
        self.process: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> ServerProcess:
        """Start the process (see :meth:`wait_ready`)."""
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env=child_env(self.threads)
            )
        return self

    def wait_ready(self) -> ServerProcess:
        """Wait until ``GET /healthz`` answers 200; keep what it says in :attr:`info`.

        Raises:
            ServeBenchError: The server exited, failed to load its model, or was not ready
                within ``start_timeout_s`` (the message holds what it printed).
        """
        import httpx

        assert self.process is not None, "enter the ServerProcess first"
        deadline = time.monotonic() + self.start_timeout_s
        with httpx.Client(base_url=self.url, timeout=5.0, trust_env=False) as client:
            while True:
                if self.process.poll() is not None:
                    raise ServeBenchError(
                        f"the server exited with status {self.process.returncode} before it "
                        f"was ready; it printed:\n{self.tail()}"
                    )
                if time.monotonic() > deadline:
                    raise ServeBenchError(
                        f"the server was not ready after {self.start_timeout_s:g} s "
                        f"(GET /healthz); it printed:\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get("/healthz")
                    if response.status_code == 200:
                        self.info = response.json()
                        return self
                    if response.json().get("status") == "failed":
                        raise ServeBenchError(
                            f"the server could not load the model: {response.json().get('error')}"
                        )
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM (uvicorn shuts down cleanly, closing the log), then SIGKILL after ``grace_s``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def tail(self, n: int = 2000) -> str:
        """The last ``n`` characters the server printed."""
        try:
            return self.output.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""

    def metrics(self) -> dict[str, float]:
        """The server's unlabelled Prometheus samples (``GET /metrics``), name -> value."""
        import httpx

        with httpx.Client(base_url=self.url, timeout=30.0, trust_env=False) as client:
            return parse_metrics(client.get("/metrics").text)


def parse_metrics(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text page: ``{"rlagent_batch_size_sum": 12.0, ...}``."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" in line:
            continue
        name, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            samples[name] = float(value)
    return samples


@dataclass
class LoadResult:
    """What one run of :func:`drive` measured.

    Attributes:
        latencies_s: Seconds from sending each answered turn to reading its answer.
        errors: Turns answered with another status than 200, or not answered.
        seconds: Wall time from the first turn sent to the last answer read.
        sessions: Sessions opened while timed.
        timed_out: Whether the time limit stopped the run before every turn was sent.
        error_samples: The first few error messages.
    """

    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    sessions: int = 0
    timed_out: bool = False
    error_samples: list[str] = field(default_factory=list)


async def _drive(
    url: str,
    *,
    kind: str,
    clients: int,
    requests: int,
    turns_per_session: int,
    payload: Callable[[int, int], dict[str, Any]],
    timeout_s: float,
) -> LoadResult:
    import httpx

    result = LoadResult()
    route = "turns" if kind == "dialogue" else "recommend"
    claimed = 0
    # One connection per client, each in its own pool: a single pool shared by many
    # connections costs the load generator time per request that grows with their number.
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()  # unused on http://, but each client would build one
    https = [
        httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=one, trust_env=False, verify=tls)
        for _ in range(clients)
    ]

    async def open_session(http: Any) -> str:
        response = await http.post("/v1/sessions")
        if response.status_code != 201:
            raise ServeBenchError(
                f"POST /v1/sessions answered {response.status_code}: {response.text[:300]}"
            )
        return str(response.json()["session_id"])

    async def client(index: int, session: str | None, deadline: float) -> None:
        nonlocal claimed
        http = https[index]
        turns = 0
        while claimed < requests:
            if time.monotonic() > deadline:
                result.timed_out = True
                return
            number = claimed
            claimed += 1
            if session is None:
                session = await open_session(http)
                result.sessions += 1
                turns = 0
            start = time.perf_counter()
            try:
                response = await http.post(
                    f"/v1/sessions/{session}/{route}", json=payload(index, number)
                )
            except httpx.HTTPError as exc:
                result.errors += 1
                _sample(result, f"{type(exc).__name__}: {exc}")
                session = None
                continue
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                result.errors += 1
                _sample(result, f"{response.status_code}: {response.text[:300]}")
                session = None
                continue
            result.latencies_s.append(elapsed)
            turns += 1
            if turns >= turns_per_session or response.json().get("action") == "escalate":
                session = None  # a new customer; the old session expires on the server

    try:
        # Every client opens its first session (and its connection) before the clock starts.
        first = await asyncio.gather(*(open_session(http) for http in https))
        deadline = time.monotonic() + timeout_s
        start = time.perf_counter()
        await asyncio.gather(*(client(i, first[i], deadline) for i in range(clients)))
        result.seconds = time.perf_counter() - start
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
    return result


def _sample(result: LoadResult, message: str) -> None:
    if len(result.error_samples) < 5:
        result.error_samples.append(message)


def drive(
    url: str,
    *,
    kind: str,
    clients: int,
    requests: int,
    turns_per_session: int,
    payload: Callable[[int, int], dict[str, Any]],
    timeout_s: float,
) -> LoadResult:
    """Send ``requests`` turns from ``clients`` concurrent sessions; time every answer.

    Each client opens a session (before the clock starts), sends turns one after another,
    each waiting for the previous answer (a customer reads the reply before writing again),
    and moves to a new session after ``turns_per_session`` turns or when the agent escalates.

    Args:
        url: The server, e.g. ``http://127.0.0.1:8000``.
        kind: ``"dialogue"`` (``POST .../turns``) or ``"slate"`` (``POST .../recommend``).
        clients: Concurrent sessions.
        requests: Turns in all (claimed one at a time by whichever client is free).
        turns_per_session: Turns before a client starts a new session.
        payload: ``payload(client_index, request_number)`` -> the JSON body of a turn.
        timeout_s: No turn is sent after this many seconds.

    Returns:
        The :class:`LoadResult`.
    """
    return asyncio.run(
        _drive(
            url,
            kind=kind,
            clients=clients,
            requests=requests,
            turns_per_session=turns_per_session,
            payload=payload,
            timeout_s=timeout_s,
        )
    )
