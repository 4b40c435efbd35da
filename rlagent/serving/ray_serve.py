"""Scale-out: the same FastAPI app, deployed on Ray Serve.

:func:`deployment` wraps the app that ``rlagent serve`` runs with uvicorn (built by
:func:`~rlagent.serving.build_app`, so routes, errors, pages, metrics and the interaction log
are the same code) in a Ray Serve deployment with ``@serve.ingress``; :func:`serve_on_ray`
(``rlagent serve MODEL --ray``) starts Ray, runs it and blocks until Ctrl-C::

    import ray
    from ray import serve
    from rlagent.serving.ray_serve import deployment

    ray.init(include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    serve.run(deployment("runs/demo/model", log="interactions.db"), route_prefix="/")

Decisions (docs/serving.md, "Ray Serve", says why):

* **Batching**: each replica keeps the app's own :class:`~rlagent.serving.MicroBatcher`, not
  ``@serve.batch``: the batch is also the log transaction that must commit before any of its
  decisions is answered, and ``max_ongoing_requests`` is raised to ``2 * max_batch`` so that a
  replica is sent enough requests to fill a batch (Ray's default is 5).
* **Interaction log**: one SQLite file per replica. With one replica the log is ``PATH``; with
  several, replica ``R`` writes :func:`replica_log_path` (``interactions.replica-R.db``).
* **Sessions** live in one replica's memory. Several replicas need session affinity: requests
  carry the header ``x-session-id`` (any key the client picks per session) and Ray Serve's
  consistent-hash router (in Ray 2.60) sends every request with that key to the same replica;
  session requests without it are refused with 428.
* The model is loaded while the replica starts (the lifespan runs under ingress), so a replica
  is ready, and ``serve.run`` returns, only once its model is loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from rlagent.serving.config import ServeConfig
from rlagent.serving.errors import ServingConfigError
from rlagent.serving.exploration import Exploration
from rlagent.serving.server import DEFAULT_LOG, build_app, check_address, check_paths

__all__ = [
    "MIN_RAY_VERSION",
    "REPLICA_HEADER",
    "deployment",
    "replica_app",
    "replica_log_path",
    "serve_on_ray",
    "session_header",
]

#: The oldest Ray whose ``serve.ingress`` takes an app builder (ray-project/ray#52892).
MIN_RAY_VERSION = (2, 47)
#: Response header naming the replica that answered (its rank, or Ray's replica id).
REPLICA_HEADER = "x-rlagent-replica"

_RAY_HINT = "Serving on Ray needs Ray Serve: pip install 'rlagent[ray-serve]' (ray[serve]>=2.47)"
_ROUTER = "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter"
_logger = logging.getLogger("rlagent.serving")


def session_header() -> str:
    """The request header Ray Serve routes sessions by (``RAY_SERVE_SESSION_ID_HEADER_KEY``)."""
    return os.environ.get("RAY_SERVE_SESSION_ID_HEADER_KEY", "x-session-id")


def replica_log_path(path: str | os.PathLike, replica: str | int) -> Path:
    """Where replica ``replica`` of a several-replica deployment logs: ``STEM.replica-R.SUFFIX``.

    >>> str(replica_log_path("logs/interactions.db", 1))
    'logs/interactions.replica-1.db'
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.replica-{replica}{path.suffix}")


def replica_app(
    model: str | os.PathLike,
    *,
    replica: str | int,
    num_replicas: int = 1,
    log: str | os.PathLike | None = DEFAULT_LOG,
    affinity_header: str | None = None,
    **kwargs: Any,
) -> Any:
    """The app one replica serves: :func:`~rlagent.serving.build_app`, loaded eagerly.

    Needs no Ray (a deployment calls it in each replica). Every response names the replica in
    the header ``x-rlagent-replica``.

    Args:
        model: The model folder.
        replica: This replica's rank (or id): names its log file and answers.
        num_replicas: Replicas of the deployment; with more than one, the log is
            :func:`replica_log_path` and session requests need ``affinity_header``.
        log: The interaction log path (``None``: log nothing).
        affinity_header: The header session requests must carry when ``num_replicas > 1``
            (default :func:`session_header`).
        **kwargs: As :func:`~rlagent.serving.build_app` (``env_id``, ``planner``, ``config``, ...).

    Returns:
        The FastAPI app, its agent loaded.
    """
    from fastapi import Request
    from fastapi.responses import JSONResponse

    if log is not None and num_replicas > 1:
        log = replica_log_path(log, replica)
    exploration = kwargs.get("exploration")
    if exploration is not None and str(replica).isdigit():
        # Each replica its own sampling stream.
        kwargs["exploration"] = dataclasses.replace(
            exploration, seed=exploration.seed + int(replica)
        )
    app = build_app(model, log=log, eager=True, **kwargs)
    header = (affinity_header or session_header()).lower()
    names = {header, header.replace("-", "_"), header.replace("_", "-")}
    refusal = (
        f"this service runs {num_replicas} replicas and keeps each session in the memory of "
        f"one of them: send the header '{header}: KEY' with POST /v1/sessions and with every "
        "request about that session, one KEY of your choosing per session (e.g. a random "
        "UUID), so that every request of the session reaches the same replica."
    )

    @app.middleware("http")
    async def _replica(request: Request, call_next: Any) -> Any:
        if (
            num_replicas > 1
            and "/v1/sessions" in request.url.path
            and not any(request.headers.get(name) for name in names)
        ):
            response = JSONResponse(
                {"error": refusal, "kind": "SessionAffinityError"}, status_code=428
            )
        else:
            response = await call_next(request)
        response.headers[REPLICA_HEADER] = str(replica)
        return response

    return app


def _import_serve() -> Any:
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise ImportError(f"{_RAY_HINT} ({exc})") from exc
    version = tuple(int(p) for p in ray.__version__.split(".")[:2] if p.isdigit())
    if version and version < MIN_RAY_VERSION:
        raise ImportError(
            f"ray {ray.__version__} is too old to serve the app: serve.ingress takes an app "
            f"builder from Ray {'.'.join(map(str, MIN_RAY_VERSION))} on. {_RAY_HINT}"
        )
    return serve


def _replica_key() -> str:
    from ray import serve

    context = serve.get_replica_context()
    rank = getattr(context, "rank", None)
    rank = getattr(rank, "rank", rank)
    return str(rank) if isinstance(rank, int) else str(context.replica_tag)


def deployment(
    model: str | os.PathLike,
    *,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    log: str | os.PathLike | None = DEFAULT_LOG,
    planner: str | None = None,
    simulations: int = 64,
    device: str = "cpu",
    encoder_dtype: str | None = None,
    exploration: Exploration | None = None,
    config: ServeConfig | None = None,
    num_replicas: int = 1,
    num_cpus: float = 1.0,
    max_ongoing_requests: int | None = None,
    name: str = "rlagent",
) -> Any:
    """The served agent as a Ray Serve application: ``serve.run(deployment(MODEL))``.

    Each replica runs the app :func:`~rlagent.serving.build_app` builds, with its own
    micro-batcher and its own log file; the model is loaded while the replica starts. Paths
    are resolved here and must exist on the node that runs a replica (one machine, or a
    shared filesystem for the model).

    Args:
        model: A model folder in the safe format.
        env_id: As :func:`~rlagent.serving.build_app`.
        env_kwargs: As :func:`~rlagent.serving.build_app`.
        log: SQLite interaction log, ``PATH`` with one replica and
            :func:`replica_log_path` per replica with several; ``None`` logs nothing.
        planner: As :func:`~rlagent.serving.build_app`.
        simulations: As :func:`~rlagent.serving.build_app`.
        device: As :func:`~rlagent.serving.build_app`.
        encoder_dtype: As :func:`~rlagent.serving.build_app`.
        exploration: As :func:`~rlagent.serving.build_app`; replica ``r`` samples with
            ``seed + r``.
        config: Batching, session and input limits, per replica.
        num_replicas: Copies of the app. More than one needs session affinity (Ray 2.60's router):
            clients send ``x-session-id`` on every session request (see :func:`replica_app`).
        num_cpus: Logical CPUs each replica reserves (fractions allowed).
        max_ongoing_requests: Requests Ray sends a replica at once (default
            ``2 * config.max_batch``, at least 8): fewer caps the micro-batches.
        name: The deployment's name.

    Returns:
        A ``ray.serve.Application`` for ``serve.run(app, route_prefix="/")``.

    Raises:
        ImportError: Ray Serve is missing or older than 2.47.
        ServingConfigError: A bad path or setting, or several replicas on a Ray without the
            consistent-hash router.
        rlagent.agents.ModelFileError: ``model`` is not a model folder.
    """
    serve = _import_serve()
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        raise ServingConfigError(f"num_replicas={num_replicas!r} must be an int >= 1.")
    if not num_cpus > 0:
        raise ServingConfigError(f"num_cpus={num_cpus!r} must be > 0 (fractions allowed).")
    config = config or ServeConfig()
    if max_ongoing_requests is None:
        max_ongoing_requests = max(2 * config.max_batch, 8)
    elif max_ongoing_requests < 1:
        raise ServingConfigError(f"max_ongoing_requests={max_ongoing_requests!r} must be >= 1.")
    check_paths(model, log)
    _check_model_dir(model)
    options: dict[str, Any] = {}
    if num_replicas > 1:
        options["request_router_config"] = _affinity_router(num_replicas)
    if "max_constructor_retry_count" in _parameters(serve.deployment):
        options["max_constructor_retry_count"] = 1  # a model that fails to load fails again
    build_kwargs = dict(
        model=str(Path(model).resolve()),
        log=None if log is None else str(Path(log).resolve()),
        num_replicas=num_replicas,
        affinity_header=session_header(),
        env_id=env_id,
        env_kwargs=dict(env_kwargs) if env_kwargs else None,
        planner=planner,
        simulations=simulations,
        device=device,
        encoder_dtype=encoder_dtype,
        exploration=exploration,
        config=config,
    )

    def build() -> Any:
        return replica_app(replica=_replica_key(), **build_kwargs)

    class RLAgentService:
        """One replica of the served agent; the app itself is built by ``build``."""

        def check_health(self) -> None:
            holder = self.app.state.holder  # type: ignore[attr-defined]
            if holder.get("state") is None:
                raise RuntimeError(f"the model is not loaded: {holder.get('error')}")

    ingress = serve.ingress(build)(RLAgentService)
    return serve.deployment(
        ingress,
        name=name,
        num_replicas=num_replicas,
        ray_actor_options={"num_cpus": float(num_cpus)},
        max_ongoing_requests=int(max_ongoing_requests),
        **options,
    ).bind()


def _check_model_dir(model: str | os.PathLike) -> None:
    """Refuse a path that is not a safe-format model here, before Ray starts a replica."""
    from rlagent.agents.saving import resolve_model_dir
    from rlagent.agents.trust import is_pickled_model
    from rlagent.serving.errors import PickledModelError, pickled_model_message

    if Path(model).is_file() and is_pickled_model(model):
        raise PickledModelError(pickled_model_message(model))
    resolve_model_dir(model)


def _parameters(function: Any) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return set()


def _affinity_router(num_replicas: int) -> Any:
    try:
        from ray.serve.config import RequestRouterConfig
        from ray.serve.experimental import consistent_hash_router  # noqa: F401
    except ImportError as exc:
        raise ServingConfigError(
            f"num_replicas={num_replicas} needs session affinity, which comes from Ray Serve's "
            "consistent-hash router (ray.serve.experimental, present in Ray 2.60), and this Ray "
            f"lacks it ({exc}): upgrade ray[serve], or serve one replica (sessions live in a "
            "replica's memory)."
        ) from None
    # No fallback: a busy replica queues the request rather than send it where the session
    # is unknown.
    return RequestRouterConfig(
        request_router_class=_ROUTER, request_router_kwargs={"num_fallback_replicas": 0}
    )


def serve_on_ray(
    model: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    address: str | None = None,
    num_cpus: float | None = None,
    **kwargs: Any,
) -> None:
    """Serve ``model`` on Ray Serve until interrupted (Ctrl-C): ``rlagent serve MODEL --ray``.

    Starts a local Ray instance (no dashboard, a small object store, as many CPUs as the
    machine has) unless ``address`` or ``RAY_ADDRESS`` names a running cluster to join, runs
    :func:`deployment` at ``http://host:port/`` and, on Ctrl-C or SIGTERM, removes it (and
    stops the Ray it started).

    Args:
        model: The model folder.
        host: Address the Serve HTTP proxy binds (localhost unless told otherwise).
        port: Its port.
        replicas: Copies of the app (see :func:`deployment` for sessions and logs).
        address: A running Ray cluster to join (``None``: ``RAY_ADDRESS`` or a new local one).
        num_cpus: CPUs per replica (default: one, or the machine's share when replicas
            outnumber its cores).
        **kwargs: As :func:`deployment` (``env_id``, ``log``, ``planner``, ``config``, ...).

    Raises:
        ImportError: Ray Serve is missing.
        ServingConfigError: A bad setting, or a deployment that failed to start.
    """
    check_address(host, port)
    serve = _import_serve()
    import ray

    cores = os.cpu_count() or 1
    per_replica = num_cpus if num_cpus is not None else min(1.0, cores / max(int(replicas), 1))
    app = deployment(model, num_replicas=replicas, num_cpus=per_replica, **kwargs)
    address = address or os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        init: dict[str, Any] = {"include_dashboard": False, "runtime_env": _runtime_env()}
        if address:
            init["address"] = address
        else:
            init.update(address="local", num_cpus=cores, object_store_memory=256 * 1024**2)
        ray.init(**init)
    name = kwargs.get("name", "rlagent")
    previous = _stop_on_sigterm()
    try:
        serve.start(http_options={"host": host, "port": int(port)})
        try:
            serve.run(app, name=name, route_prefix="/", blocking=False)
        except RuntimeError as exc:
            raise ServingConfigError(
                f"the model could not be served on Ray: {exc} (the replica's error is in the "
                "log above)"
            ) from exc
        _logger.warning("serving %s on Ray Serve: http://%s:%s/ (Ctrl-C stops)", model, host, port)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            if started:
                serve.shutdown()
                ray.shutdown()
            else:
                serve.delete(name)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm() -> Any:
    """Let SIGTERM stop the server as Ctrl-C does (so Ray is shut down); the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, stop)


def _runtime_env() -> dict[str, Any]:
    """Workers import rlagent from where this process does, installed or not."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": {"PYTHONPATH": path}}
