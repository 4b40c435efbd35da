"""``rlagent bench serve``: requests/s and latency of the HTTP service under concurrent load.

The server is ``rlagent serve`` itself, run as a subprocess on 127.0.0.1 (a free port), so
that the load generator, an asyncio loop of ``httpx.AsyncClient`` sessions in this process,
never shares an interpreter lock with it. For each encoder dtype two servers run: batched
(``max_batch`` decisions per forward pass, the service's default) and one request at a time
(``max_batch=1``). All of them load side by side and stay up; each concurrency level (1, 16
and 64 clients by default) sends a bounded number of turns to each server, split into rounds
that alternate the servers, so that a slow spell of a shared machine hits each alike. Servers
not being measured sit idle.

Each client is one customer after another: it opens a session (the first one before the clock
starts), sends a turn, waits for the answer, sends the next, and opens a new session after
``turns_per_session`` turns (or when the agent escalates). Texts are the served env's own
customer turns with a reference number appended, so every text is new to the frozen encoder's
embedding cache (the agent's fixed phrases are cached, as in service). Decisions are logged
(SQLite, the server's default ``synchronous=FULL``), as ``rlagent serve`` does by default.

Reported per level: requests/s (answered turns over wall time), p50 and p99 latency (client
side, per turn), mean batch size (decisions over forward passes, from the deltas of the
server's ``GET /metrics``), and the ratio of batched to one-at-a-time requests/s.

Encoder dtypes (``fp32``, ``bf16``, ``int8``) reach the server as ``rlagent serve
--encoder-dtype`` where that option exists; otherwise, for a model the bench builds itself, as
the model's own encoder dtype (``make_ppo(dtype=...)``); a dtype neither accepts is reported
under ``"unsupported"`` with the reason.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlagent.serving._bench_load import ServeBenchError, child_env
from rlagent.serving._bench_runs import Variant, measure, start_variant
from rlagent.serving.config import ServeConfig
from rlagent.serving.errors import ServingConfigError

__all__ = [
    "ENCODER_DTYPES",
    "ServeBenchConfig",
    "ServeBenchError",
    "build_bench_model",
    "format_serve_bench",
    "run_serve_bench",
]

#: Encoder dtypes the bench knows; the ``dtype`` name ``make_ppo`` takes for each.
ENCODER_DTYPES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "int8": "int8"}
#: The env of the model the bench builds when given none.
DEFAULT_ENV = "rlagent/CustomerService-v0"
_QUICK_MODEL = dict(encoder="tiny-random", encoder_layers=[-1], max_length=16)
_QUICK_PPO = dict(n_steps=8, batch_size=8)


@dataclass(frozen=True)
class ServeBenchConfig:
    """The load of ``rlagent bench serve``.

    Attributes:
        clients: Concurrency levels: concurrent sessions, each waiting for its answer before
            sending its next turn.
        requests: Turns sent per level to each server (the bound on each level's work).
        rounds: Runs each level is split into, alternating the servers between runs.
        turns_per_session: Turns per session before a client starts a new one.
        max_batch: Decisions per forward pass of the batched server (the service default).
        max_wait_ms: Longest a request waits for company (the service default).
        encoder_dtypes: Encoder dtypes to compare (names in :data:`ENCODER_DTYPES`).
        server_threads: ``OMP_NUM_THREADS`` of the server (torch's threads); ``None`` keeps
            this process's setting.
        warmup: Untimed turns before the first level of each server (loads lazy code paths
            and the agent's phrases into the embedding cache).
        timeout_s: Time limit of one level; turns not sent by then are not sent.
        start_timeout_s: Longest wait for a server to load its model.
        log: Whether the servers log decisions (``rlagent serve`` does by default).
    """

    clients: tuple[int, ...] = (1, 16, 64)
    requests: int = 384
    rounds: int = 2
    turns_per_session: int = 4
    max_batch: int = ServeConfig.max_batch
    max_wait_ms: float = ServeConfig.max_wait_ms
    encoder_dtypes: tuple[str, ...] = ("fp32", "bf16")
    server_threads: int | None = None
    warmup: int = 32
    timeout_s: float = 300.0
    start_timeout_s: float = 300.0
    log: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "clients", tuple(self.clients))
        object.__setattr__(self, "encoder_dtypes", tuple(self.encoder_dtypes))
        for name in ("requests", "rounds", "turns_per_session", "max_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServingConfigError(f"{name}={value!r} must be an int >= 1.")
        if not self.clients or any(
            isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.clients
        ):
            raise ServingConfigError(
                f"clients={self.clients!r} must be ints >= 1, e.g. (1, 16, 64)."
            )
        unknown = [d for d in self.encoder_dtypes if d not in ENCODER_DTYPES]
        if unknown or not self.encoder_dtypes:
            raise ServingConfigError(
                f"encoder_dtypes={self.encoder_dtypes!r}: expected one or more of "
                f"{tuple(ENCODER_DTYPES)}, e.g. ('fp32', 'bf16')."
            )
        if self.server_threads is not None and self.server_threads < 1:
            raise ServingConfigError(
                f"server_threads={self.server_threads!r} must be >= 1, or None for this "
                "process's OMP_NUM_THREADS."
            )
        if self.warmup < 0 or not self.timeout_s > 0 or not self.start_timeout_s > 0:
            raise ServingConfigError(
                "warmup must be >= 0 and timeout_s, start_timeout_s > 0 seconds; got "
                f"warmup={self.warmup!r}, timeout_s={self.timeout_s!r}, "
                f"start_timeout_s={self.start_timeout_s!r}."
            )

    @classmethod
    def quick(cls, **overrides: Any) -> ServeBenchConfig:
        """Small budgets for a smoke test: 1 and 4 clients, 8 turns a level, fp32 only."""
        settings: dict[str, Any] = dict(
            clients=(1, 4),
            requests=8,
            rounds=1,
            warmup=2,
            encoder_dtypes=("fp32",),
            timeout_s=60.0,
        )
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)


def build_bench_model(
    out: str | os.PathLike,
    *,
    env_id: str = DEFAULT_ENV,
    encoder: str = "default",
    encoder_dtype: str | None = None,
    quick: bool = False,
) -> Path:
    """Save an untrained model for the bench: what ``rlagent train`` builds, before training.

    The env's bundled settings (for customer service: the default MiniLM encoder, frozen),
    saved with :func:`rlagent.agents.save_model`; the weights do not matter for speed.

    Args:
        out: The model folder to write.
        env_id: The env.
        encoder: The encoder (``"default"``: all-MiniLM-L6-v2).
        encoder_dtype: A name in :data:`ENCODER_DTYPES`, or ``None`` for the setting's default.
        quick: A tiny random encoder and short segments instead (for smoke tests).

    Returns:
        The model folder.
    """
    from rlagent.agents import make_ppo, save_model

    kwargs: dict[str, Any] = dict(n_envs=1, seed=0, device="cpu", encoder=encoder)
    if quick:
        kwargs.update(_QUICK_MODEL, **_QUICK_PPO)
    if encoder_dtype is not None:
        kwargs["dtype"] = ENCODER_DTYPES[encoder_dtype]
    return Path(save_model(make_ppo(env_id, **kwargs), out))


def _serve_accepts_encoder_dtype() -> bool:
    """Whether this ``rlagent serve`` has ``--encoder-dtype``."""
    done = subprocess.run(
        [sys.executable, "-m", "rlagent.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        env=child_env(None),
        timeout=120,
        check=False,
    )
    return "--encoder-dtype" in done.stdout


def _machine(config: ServeBenchConfig) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    threads = config.server_threads
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "server_threads": threads if threads is not None else os.environ.get("OMP_NUM_THREADS"),
    }


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_serve_bench(
    model: str | os.PathLike | None = None,
    *,
    env_id: str | None = None,
    encoder: str = "default",
    quick: bool = False,
    config: ServeBenchConfig | None = None,
    workdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Serve a model under concurrent load, batched and one request at a time; time it.

    Args:
        model: A model folder to serve; ``None`` builds an untrained one
            (:func:`build_bench_model`) in a temporary folder.
        env_id: The env to serve; ``None``: the model's own (for a built model,
            ``rlagent/CustomerService-v0``).
        encoder: The encoder of a built model (``"default"``: all-MiniLM-L6-v2, frozen).
        quick: A built model gets a tiny random encoder (smoke tests); budgets come from
            ``config`` (see :meth:`ServeBenchConfig.quick`).
        config: The load; ``None``: :class:`ServeBenchConfig` defaults (or its ``quick()``).
        workdir: Folder for built models, logs and server output; ``None``: a temporary
            folder, removed afterwards.

    Returns:
        One JSON-ready dict: ``rows`` (one per encoder dtype, mode and level, with
        ``requests_per_s``, ``p50_ms``, ``p99_ms``, ``mean_batch_size``, ...), ``speedup``
        (batched over one-at-a-time requests/s, per dtype and level), ``unsupported``
        (dtype -> reason), ``config``, ``machine``, ``load_average`` (before and after) and
        what was served.

    Raises:
        ServeBenchError: A server did not start, or answered no turn at some level.
        ServingConfigError: A bad setting.
    """
    config = config or (ServeBenchConfig.quick() if quick else ServeBenchConfig())
    if model is not None and not Path(model).exists():
        raise ServingConfigError(
            f"model {os.fspath(model)!r} does not exist; pass a model folder (rlagent train "
            "writes OUT/model), or leave --model out to bench an untrained default model."
        )
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="rlagent-bench-serve-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        flag = _serve_accepts_encoder_dtype()
        plans, unsupported = _plans(model, env_id, encoder, quick, config, flag, root)
        if not plans:
            raise ServingConfigError(
                f"none of encoder_dtypes={config.encoder_dtypes} can be served here: "
                f"{unsupported}; pass --encoder-dtypes fp32."
            )
        with contextlib.ExitStack() as stack:
            variants = [
                start_variant(
                    stack,
                    model_dir,
                    env_id=env_id,
                    dtype=dtype,
                    dtype_flag=flag,
                    mode=mode,
                    config=config,
                    workdir=root,
                )
                for dtype, model_dir in plans
                for mode in ("batched", "one_at_a_time")
            ]
            variants = _ready(variants, unsupported)
            rows = measure(variants, config)
    return {
        "env_id": env_id or (DEFAULT_ENV if model is None else "the model's own"),
        "model": os.fspath(model)
        if model is not None
        else f"untrained, encoder {encoder!r}" + (" (quick: tiny-random)" if quick else ""),
        "encoder_dtype_via": "rlagent serve --encoder-dtype" if flag else "the model's dtype",
        "config": asdict(config),
        "machine": _machine(config),
        "load_average": {"before": load_before, "after": _load_average()},
        "rows": rows,
        "speedup": _speedups(rows),
        "unsupported": unsupported,
    }


def _ready(variants: list[Variant], unsupported: dict[str, str]) -> list[Variant]:
    """The variants whose servers came up; a dtype whose server failed goes to ``unsupported``.

    Raises:
        ServeBenchError: No server came up.
    """
    failed: dict[str, str] = {}
    for variant in variants:
        if variant.dtype in failed:
            variant.server.stop()
            continue
        try:
            variant.server.wait_ready()
        except ServeBenchError as exc:
            failed[variant.dtype] = f"rlagent serve --encoder-dtype {variant.dtype} failed: {exc}"
    ready = [v for v in variants if v.dtype not in failed]
    for variant in variants:
        if variant.dtype in failed:
            variant.server.stop()
    unsupported.update(failed)
    if not ready:
        raise ServeBenchError(f"no server came up: {failed}")
    return ready


def _plans(
    model: str | os.PathLike | None,
    env_id: str | None,
    encoder: str,
    quick: bool,
    config: ServeBenchConfig,
    flag: bool,
    root: Path,
) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """Which model folder each encoder dtype is served from, and the dtypes that cannot be."""
    plans: list[tuple[str, Path]] = []
    unsupported: dict[str, str] = {}
    if flag:
        if model is None:
            model = build_bench_model(
                root / "model", env_id=env_id or DEFAULT_ENV, encoder=encoder, quick=quick
            )
        return [(dtype, Path(model)) for dtype in config.encoder_dtypes], unsupported
    for dtype in config.encoder_dtypes:
        if model is not None:
            unsupported[dtype] = (
                "this rlagent serve has no --encoder-dtype, so a given model is served in the "
                "dtype it was saved with; leave --model out to compare dtypes on built models"
            )
            continue
        try:
            built = build_bench_model(
                root / f"model-{dtype}",
                env_id=env_id or DEFAULT_ENV,
                encoder=encoder,
                encoder_dtype=dtype,
                quick=quick,
            )
        except (ValueError, TypeError, ImportError) as exc:
            unsupported[dtype] = f"{type(exc).__name__}: {exc}"
            continue
        plans.append((dtype, built))
    if model is not None:
        plans.append(("as-saved", Path(model)))
    return plans, unsupported


def _speedups(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    by_key = {(r["encoder_dtype"], r["mode"], r["clients"]): r for r in rows}
    for (dtype, mode, clients), row in by_key.items():
        single = by_key.get((dtype, "one_at_a_time", clients))
        if mode == "batched" and single is not None:
            out.setdefault(dtype, {})[str(clients)] = (
                row["requests_per_s"] / single["requests_per_s"]
            )
    return out


def format_serve_bench(result: Mapping[str, Any]) -> str:
    """The result of :func:`run_serve_bench` as a table, with the machine and the load."""
    machine = result["machine"]
    config = result["config"]
    lines = [
        f"rlagent bench serve: {result['env_id']}, model {result['model']}",
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, server "
        f"OMP_NUM_THREADS={machine['server_threads']}; load average before "
        f"{result['load_average']['before']}, after {result['load_average']['after']}",
        f"{config['requests']} turns per level, {config['turns_per_session']} per session, "
        f"max_wait_ms={config['max_wait_ms']:g}, log {'on' if config['log'] else 'off'}",
        "",
        f"{'dtype':<9}{'mode':<15}{'batch':>6}{'clients':>8}{'req/s':>9}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'mean batch':>11}{'errors':>7}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['encoder_dtype']:<9}{row['mode']:<15}{row['max_batch']:>6}{row['clients']:>8}"
            f"{row['requests_per_s']:>9.1f}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
            f"{row['mean_batch_size']:>11.1f}{row['errors']:>7}"
            + ("  (timed out)" if row["timed_out"] else "")
        )
    lines.append("")
    for dtype, ratios in result["speedup"].items():
        parts = ", ".join(f"{c} clients {r:.2f}x" for c, r in ratios.items())
        lines.append(f"batched / one-at-a-time requests/s ({dtype}): {parts}")
    fp32 = _by(result["rows"], "fp32")
    for dtype in dict.fromkeys(r["encoder_dtype"] for r in result["rows"]):
        other = _by(result["rows"], dtype)
        if dtype == "fp32" or not fp32 or not other:
            continue
        parts = ", ".join(
            f"{mode} {clients} clients {other[(mode, clients)] / fp32[(mode, clients)]:.2f}x"
            for mode, clients in fp32
            if (mode, clients) in other
        )
        lines.append(f"{dtype} / fp32 requests/s: {parts}")
    for dtype, reason in result["unsupported"].items():
        lines.append(f"{dtype}: unsupported ({reason})")
    return "\n".join(lines)


def _by(rows: Sequence[Mapping[str, Any]], dtype: str) -> dict[tuple[str, int], float]:
    return {
        (r["mode"], r["clients"]): r["requests_per_s"] for r in rows if r["encoder_dtype"] == dtype
    }
