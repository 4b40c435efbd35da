"""A served app running in a background thread of this process, for scripts and notebooks.

Example:
    >>> from rlagent.serving import BackgroundServer, build_app, play_customers
    >>> with BackgroundServer(build_app("runs/cs/model", log="log.db")) as url:  # doctest: +SKIP
    ...     play_customers(url, episodes=20)
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from rlagent.serving.errors import ServingConfigError

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """Run an app with uvicorn in a daemon thread on a loopback port; a context manager.

    Entering starts the server and waits until ``GET /healthz`` answers 200 (the model has
    loaded); it yields the base URL. Leaving stops the server and waits for its thread, so the
    app's shutdown (closing the interaction log) has run.

    Args:
        app: The app (:func:`rlagent.serving.build_app`).
        host: Loopback address to bind.
        port: Port; 0 picks a free one.
        ready_timeout_s: Longest wait for the model to load.
    """

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, ready_timeout_s: float = 300.0
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ready_timeout_s = ready_timeout_s
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        import httpx
        import uvicorn

        sock = socket.socket()
        sock.bind((self.host, self.port))
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        self.url = f"http://{self.host}:{sock.getsockname()[1]}"
        deadline = time.monotonic() + self.ready_timeout_s
        while True:  # the model loads in the background: /healthz is 503 until it is ready
            try:
                health = httpx.get(f"{self.url}/healthz", timeout=5)
                if health.status_code == 200:
                    return self.url
                if health.json().get("status") == "failed":
                    self.__exit__(None, None, None)
                    raise ServingConfigError(
                        f"the model could not be served: {health.json().get('error')}"
                    )
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.__exit__(None, None, None)
                raise ServingConfigError(
                    f"the server at {self.url} did not become ready within "
                    f"{self.ready_timeout_s:g} s; raise ready_timeout_s for a large model."
                )
            time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._server = self._thread = None
