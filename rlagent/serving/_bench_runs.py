"""The runs of ``rlagent bench serve``: servers side by side, levels in alternating rounds."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlagent.serving._bench_load import (
    ServeBenchError,
    ServerProcess,
    drive,
    free_port,
    serve_command,
)

__all__ = ["Variant", "measure", "start_variant"]


def _customer_texts(env_id: str, env_kwargs: Mapping[str, Any], n: int = 256) -> list[str]:
    """Customer turns of the served env (openings and replies), without their prefix."""
    from rlagent.env_making import make_env

    env = make_env(env_id, env_kwargs)
    rng = np.random.default_rng(0)
    texts: list[str] = []
    seed = 0
    while len(texts) < n:
        obs, _ = env.reset(seed=seed)
        seed += 1
        for _ in range(4):
            segment = obs["dialogue"][-1]
            if segment.startswith("Customer: "):
                texts.append(segment[len("Customer: ") :])
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            if terminated or truncated:
                break
    env.close()
    return texts[:n]


def _payloads(server: ServerProcess, kind: str) -> Any:
    """``payload(client, number)`` for the server's kind of agent."""
    if kind == "dialogue":
        settings = server.info.get("settings") or {}
        texts = _customer_texts(str(settings["env_id"]), dict(settings.get("env_kwargs") or {}))

        def turn(_: int, number: int) -> dict[str, Any]:
            # Every text unique: the frozen encoder's cache must not answer for customer text.
            return {"text": f"{texts[number % len(texts)]} Ref {number}."}

        return turn
    import httpx

    samples = []
    with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as client:
        for _ in range(16):
            samples.append(client.get("/v1/catalog/sample").json()["texts"])

    def recommend(client_index: int, number: int) -> dict[str, Any]:
        return {"candidates": samples[(client_index + number) % len(samples)]}

    return recommend


class Variant:
    """One server of the run (an encoder dtype, batched or one at a time) and its tallies."""

    def __init__(self, dtype: str, mode: str, max_batch: int, server: ServerProcess) -> None:
        self.dtype, self.mode, self.max_batch, self.server = dtype, mode, max_batch, server
        self.sent = 0  # turns numbered so far: every text this server sees is new to it
        self.tallies: dict[int, dict[str, Any]] = {}

    def run(self, payload: Any, kind: str, clients: int, requests: int, config: Any) -> None:
        """Send ``requests`` turns from ``clients`` sessions; add them to the level's tally."""
        before = self.server.metrics()
        offset = self.sent
        self.sent += requests + clients
        load = drive(
            self.server.url,
            kind=kind,
            clients=clients,
            requests=requests,
            turns_per_session=config.turns_per_session,
            payload=lambda c, n: payload(c, offset + n),
            timeout_s=config.timeout_s,
        )
        after = self.server.metrics()
        tally = self.tallies.setdefault(
            clients,
            dict(latencies=[], errors=0, seconds=0.0, sessions=0, timed_out=False, samples=[]),
        )
        tally["latencies"] += load.latencies_s
        tally["errors"] += load.errors
        tally["seconds"] += load.seconds
        tally["sessions"] += load.sessions
        tally["timed_out"] |= load.timed_out
        tally["samples"] += load.error_samples[: 5 - len(tally["samples"])]
        for name in ("count", "sum"):
            key = f"rlagent_batch_size_{name}"
            tally[name] = tally.get(name, 0.0) + after.get(key, 0.0) - before.get(key, 0.0)

    def rows(self) -> list[dict[str, Any]]:
        """One result row per concurrency level."""
        rows = []
        for clients, tally in self.tallies.items():
            answered = len(tally["latencies"])
            if not answered:
                raise ServeBenchError(
                    f"{self.dtype} {self.mode}: no turn was answered at {clients} clients; "
                    f"errors: {tally['samples']}; the server printed:\n{self.server.tail()}"
                )
            ms = np.asarray(tally["latencies"], dtype=float) * 1000.0
            rows.append(
                {
                    "encoder_dtype": self.dtype,
                    "mode": self.mode,
                    "max_batch": self.max_batch,
                    "clients": clients,
                    "requests": answered,
                    "errors": tally["errors"],
                    "seconds": tally["seconds"],
                    "requests_per_s": answered / tally["seconds"],
                    "p50_ms": float(np.percentile(ms, 50)),
                    "p99_ms": float(np.percentile(ms, 99)),
                    "mean_batch_size": tally["sum"] / tally["count"] if tally["count"] else 0.0,
                    "sessions_opened": tally["sessions"],
                    "timed_out": tally["timed_out"],
                    "error_samples": tally["samples"],
                }
            )
        return rows


def start_variant(
    stack: contextlib.ExitStack,
    model: Path,
    *,
    env_id: str | None,
    dtype: str,
    dtype_flag: bool,
    mode: str,
    config: Any,
    workdir: Path,
) -> Variant:
    max_batch = config.max_batch if mode == "batched" else 1
    port = free_port()
    name = f"{dtype}-{mode}"
    command = serve_command(
        model,
        port=port,
        log=workdir / f"{name}.db" if config.log else None,
        env_id=env_id,
        max_batch=max_batch,
        max_wait_ms=config.max_wait_ms,
        encoder_dtype=dtype if dtype_flag else None,
    )
    server = ServerProcess(
        command,
        port=port,
        output=workdir / f"{name}.out",
        threads=config.server_threads,
        start_timeout_s=config.start_timeout_s,
    )
    return Variant(dtype, mode, max_batch, stack.enter_context(server))


def measure(variants: list[Variant], config: Any) -> list[dict[str, Any]]:
    """Warm every server up, then run each level in rounds, alternating the servers."""
    kind = str(variants[0].server.info.get("kind"))
    payload = _payloads(variants[0].server, kind)
    for variant in variants:
        if config.warmup:
            clients = min(max(config.clients), config.warmup)
            variant.run(payload, kind, clients, config.warmup, config)
            variant.tallies.clear()
    for clients in config.clients:
        shares = [len(part) for part in np.array_split(np.arange(config.requests), config.rounds)]
        for round_, requests in enumerate(shares):
            # Alternate the order, so that a slow spell of a shared machine hits each alike.
            for variant in variants if round_ % 2 == 0 else variants[::-1]:
                variant.run(payload, kind, clients, requests, config)
    return [row for variant in variants for row in variant.rows()]
