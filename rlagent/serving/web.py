"""Web pages for people, served by the app: a chat page and a recommendation page.

The pages are plain HTML, CSS and JavaScript in ``rlagent/serving/pages/`` (no build step, no
framework, nothing loaded from the network); they talk to the same JSON API as any client.
:func:`mount_pages` adds to an app:

* ``GET /``: a redirect to ``pages/``, whose index reads ``GET /v1/info`` and sends the person
  to the page for this server's agent kind;
* ``GET /pages/...``: the pages and their assets (``chat.html``, ``recommend.html``, ...);
* ``GET /v1/catalog/sample?n=K``: ``K`` item texts drawn from the served env's catalogue, for
  the recommendation page to offer as candidates (a demo route: a real recommender sends its
  own candidates to ``POST /v1/sessions/{id}/recommend``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from rlagent.serving.errors import SessionInputError

__all__ = ["PAGES_DIR", "mount_pages", "n_candidates", "catalog_of"]

#: The folder holding the pages and their assets (shipped as package data).
PAGES_DIR = Path(__file__).resolve().parent / "pages"

#: The pages load nothing from anywhere but this server, and run no inline script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


class _Pages(StaticFiles):
    """Static files with a content security policy and no caching of stale page code."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response


def n_candidates(agent: Any) -> int | None:
    """How many candidates a slate agent chooses from: the agent's, else its env's; or ``None``."""
    count = getattr(agent, "n_candidates", None)
    if count is None:
        env = getattr(agent, "env", None)
        count = getattr(getattr(env, "unwrapped", env), "n_candidates", None)
    return None if count is None else int(count)


def catalog_of(agent: Any) -> Any | None:
    """The item catalogue of the env ``agent`` serves (``env.unwrapped.catalog``), or ``None``."""
    env = getattr(agent, "env", None)
    if env is None:
        return None
    catalog = getattr(getattr(env, "unwrapped", env), "catalog", None)
    if catalog is None or not getattr(catalog, "texts", None):
        return None
    return catalog


def mount_pages(app: FastAPI, ready: Callable[[], Any]) -> None:
    """Add the pages, their assets, ``GET /`` and ``GET /v1/catalog/sample`` to ``app``.

    Args:
        app: The service's app.
        ready: Returns the loaded state (with ``.agent``), or raises while the model loads.
    """

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        # Relative, so that the pages also work behind a path prefix (a proxy, Ray Serve).
        return RedirectResponse("pages/", status_code=307)

    @app.get("/v1/catalog/sample")
    async def catalog_sample(n: int | None = None) -> Any:
        """``n`` distinct item texts (and popularity) from the served env's catalogue.

        For the demo recommendation page only: the items are drawn at random from the
        catalogue of the env the model serves; ``n`` defaults to the agent's candidate count.
        """
        agent = ready().agent
        catalog = catalog_of(agent)
        if catalog is None:
            return JSONResponse(
                {
                    "error": "this server's env has no item catalogue "
                    "(env.unwrapped.catalog.texts), so /v1/catalog/sample has nothing to "
                    "offer; it serves the demo recommendation page of a recommendation env "
                    "such as rlagent/Recommendation-v0. Send your own candidates to POST "
                    "/v1/sessions/{id}/recommend instead.",
                    "kind": "NoCatalog",
                },
                status_code=404,
            )
        texts = list(catalog.texts)
        if n is None:
            n = n_candidates(agent)
            if n is None:
                raise SessionInputError(
                    "the agent does not say how many candidates it takes; pass n, e.g. "
                    "GET /v1/catalog/sample?n=10."
                )
        if not 1 <= n <= len(texts):
            raise SessionInputError(
                f"n={n} must be in 1..{len(texts)} (the catalogue holds {len(texts)} items)."
            )
        chosen = _sample(len(texts), n)
        popularity = getattr(catalog, "popularity", None)
        return {
            "texts": [texts[i] for i in chosen],
            "indices": chosen,
            "popularity": None if popularity is None else [float(popularity[i]) for i in chosen],
        }

    app.mount("/pages", _Pages(directory=PAGES_DIR, html=True), name="pages")


def _sample(population: int, n: int) -> list[int]:
    """``n`` distinct indices below ``population``, in random order (not seeded: a demo)."""
    rng = secrets.SystemRandom()
    return rng.sample(range(population), n)
