"""``rlagent serve``: load a model, open the interaction log and run the app with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlagent.serving.config import ServeConfig
from rlagent.serving.errors import ServingConfigError
from rlagent.serving.exploration import Exploration

__all__ = ["DEFAULT_LOG", "build_app", "check_address", "check_paths", "serve"]

#: Where ``rlagent serve`` logs decisions unless told otherwise (``--log``, ``--no-log``).
DEFAULT_LOG = "interactions.db"

_logger = logging.getLogger("rlagent.serving")


def build_app(
    model: str | os.PathLike,
    *,
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    log: str | os.PathLike | None = DEFAULT_LOG,
    planner: str | None = None,
    simulations: int = 64,
    device: str = "cpu",
    encoder_dtype: str | None = None,
    exploration: Exploration | None = None,
    config: ServeConfig | None = None,
    on_load_error: Any = None,
    eager: bool = False,
) -> Any:
    """The FastAPI app for ``model``, loading it in the background when the server starts.

    Args:
        model: A model folder in the safe format (``rlagent train`` writes ``OUT/model``).
        env_id: The env whose live sessions turn input into observations; ``None`` for the
            env the model was trained on.
        env_kwargs: That env's keyword arguments; ``None`` for the model's.
        log: SQLite file for the interaction log (created if missing, appended to if an
            rlagent log); ``None`` logs nothing.
        planner: ``None`` (the policy alone) or ``"mcts"``.
        simulations: MCTS simulations per decision.
        device: Torch device for the model.
        encoder_dtype: ``None`` (as trained), ``"fp32"``, ``"bf16"`` or ``"int8"`` (int8 only
            where it agrees with fp32; see docs/encoders.md).
        exploration: ``None`` (answer the most likely action) or an
            :class:`~rlagent.serving.Exploration`: sample each dialogue decision from a
            stated distribution, which the log records (docs/feedback.md, "The loop").
        config: Batching, session and input limits.
        on_load_error: Optional callable given the exception if loading fails.
        eager: Load the model now, in this call (its errors raise here), instead of in the
            background once the server starts; Ray Serve replicas load eagerly, so that a
            replica is ready only once its model is.

    Returns:
        The app (see :func:`rlagent.serving.create_app`).
    """
    from rlagent.serving.agent import ServedAgent
    from rlagent.serving.app import create_app

    check_paths(model, log)
    model_path = Path(model)
    load_kwargs: dict[str, Any] = dict(
        env_id=env_id,
        env_kwargs=dict(env_kwargs) if env_kwargs else None,
        device=device,
        planner=planner,
        simulations=simulations,
    )
    if encoder_dtype is not None:
        load_kwargs["encoder_dtype"] = encoder_dtype
    if exploration is not None:
        load_kwargs["exploration"] = exploration

    def load() -> Any:
        try:
            return ServedAgent.load(model_path, **load_kwargs)
        except Exception as exc:
            _logger.error("could not load %s: %s", model_path, exc)
            if on_load_error is not None:
                on_load_error(exc)
            raise

    def open_log(agent: Any) -> Any:
        from rlagent.serving.interaction_log import InteractionLog

        settings = dict(agent.settings)
        return InteractionLog(
            log,
            model_hash=agent.model_hash,
            env_id=str(settings.get("env_id")),
            env_kwargs=dict(settings.get("env_kwargs") or {}),
            settings=settings,
        )

    opener = open_log if log is not None else None
    return create_app(load() if eager else load, log=opener, config=config)


def check_paths(model: str | os.PathLike, log: str | os.PathLike | None) -> None:
    """Check that ``model`` exists and that ``log`` (if any) is not a directory.

    Raises:
        ServingConfigError: Either is wrong; the message says what to pass instead.
    """
    if not Path(model).exists():
        raise ServingConfigError(
            f"model {str(model)!r} does not exist; pass the model folder rlagent train wrote "
            "(e.g. runs/NAME/model)."
        )
    if log is not None and Path(log).is_dir():
        raise ServingConfigError(
            f"--log {str(log)!r} is a directory; pass a file path, e.g. {Path(log) / DEFAULT_LOG}."
        )


def check_address(host: str, port: int) -> None:
    """Check the address a server binds to.

    Raises:
        ServingConfigError: A port outside 0..65535, or a host that is not an IP address (or
            ``localhost``).
    """
    if not 0 <= int(port) <= 65535:
        raise ServingConfigError(f"port={port!r} must be in 0..65535, e.g. 8000.")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ServingConfigError(
                f"host={host!r} is not an IP address; use 127.0.0.1 (this machine only, the "
                "default) or 0.0.0.0 (every interface)."
            ) from None


def serve(
    model: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    **kwargs: Any,
) -> None:
    """Serve ``model`` over HTTP until interrupted (Ctrl-C).

    Binds to ``host`` (localhost unless told otherwise: serving on a public address exposes
    the agent and its log to whoever can reach it). Other keyword arguments as
    :func:`build_app`.

    Raises:
        ServingConfigError: A bad model path, log path, port or host.
    """
    import uvicorn

    check_address(host, port)
    holder: dict[str, Any] = {}

    def stop(_: Exception) -> None:
        server = holder.get("server")
        if server is not None:
            server.should_exit = True

    app = build_app(model, on_load_error=stop, **kwargs)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=int(port), log_level=log_level))
    holder["server"] = server
    server.run()
    state = app.state.holder
    if state.get("error"):
        raise ServingConfigError(f"the model could not be served: {state['error']}")
