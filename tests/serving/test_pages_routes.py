"""The page routes over HTTP: ``/``, ``/pages/...``, ``/v1/catalog/sample``, ``n_candidates``."""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from pages_support import CATALOG_TEXTS, N_CANDIDATES, make_page_agent  # noqa: E402

from rlagent.serving import create_app  # noqa: E402
from rlagent.serving.web import PAGES_DIR  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dialogue() -> Iterator[TestClient]:
    with TestClient(create_app(make_page_agent("dialogue"))) as client:
        yield client


@pytest.fixture(scope="module")
def slate() -> Iterator[TestClient]:
    with TestClient(create_app(make_page_agent("slate"))) as client:
        yield client


def test_root_redirects_to_the_index(dialogue: TestClient) -> None:
    response = dialogue.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "pages/"
    index = dialogue.get("/")
    assert index.status_code == 200
    assert str(index.url).endswith("/pages/")
    assert index.headers["content-type"].startswith("text/html")
    assert 'src="index.js"' in index.text


@pytest.mark.parametrize(
    ("path", "content_type", "snippet"),
    [
        ("/pages/index.html", "text/html", "<title>rlagent</title>"),
        ("/pages/chat.html", "text/html", 'id="thumbs-up"'),
        ("/pages/recommend.html", "text/html", 'id="slate"'),
        ("/pages/style.css", "text/css", ".probs"),
        ("/pages/common.js", "javascript", "renderProbabilities"),
        ("/pages/chat.js", "javascript", "feedback"),
        ("/pages/recommend.js", "javascript", "v1/catalog/sample"),
        ("/pages/index.js", "javascript", "v1/info"),
    ],
)
def test_pages_and_assets(dialogue: TestClient, path: str, content_type: str, snippet: str) -> None:
    response = dialogue.get(path)
    assert response.status_code == 200
    assert content_type in response.headers["content-type"]
    assert snippet in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_missing_page_is_a_json_404(dialogue: TestClient) -> None:
    response = dialogue.get("/pages/nope.html")
    assert response.status_code == 404
    assert response.json()["error"].startswith("no such route")


def test_pages_load_nothing_from_the_network() -> None:
    files = sorted(p for p in PAGES_DIR.iterdir() if p.is_file())
    assert {p.suffix for p in files} == {".html", ".css", ".js"}
    for page in files:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), page.name
        if page.suffix == ".html":
            # no inline script (the content security policy forbids it) and no inline style
            assert re.findall(r"<script(?![^>]*\bsrc=)", text) == [], page.name
            assert "<style" not in text and " style=" not in text, page.name


def test_setup_cfg_ships_the_pages() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["rlagent"].split(",")]
    for page in PAGES_DIR.iterdir():
        relative = page.relative_to(REPO / "rlagent").as_posix()
        assert any(Path(relative).match(p) for p in patterns), relative
    assert "playwright" in cfg["options.extras_require"]["dev"]


def test_info_says_how_many_candidates(dialogue: TestClient, slate: TestClient) -> None:
    assert slate.get("/v1/info").json()["n_candidates"] == N_CANDIDATES
    assert dialogue.get("/v1/info").json()["n_candidates"] is None


def test_catalog_sample(slate: TestClient) -> None:
    body = slate.get("/v1/catalog/sample", params={"n": 4}).json()
    assert len(body["texts"]) == 4 == len(set(body["texts"])) == len(body["popularity"])
    assert all(CATALOG_TEXTS[i] == t for i, t in zip(body["indices"], body["texts"], strict=True))
    default = slate.get("/v1/catalog/sample").json()
    assert len(default["texts"]) == N_CANDIDATES


@pytest.mark.parametrize("n", [0, len(CATALOG_TEXTS) + 1])
def test_catalog_sample_size_out_of_range(slate: TestClient, n: int) -> None:
    response = slate.get("/v1/catalog/sample", params={"n": n})
    assert response.status_code == 422
    assert response.json()["error"] == (
        f"n={n} must be in 1..{len(CATALOG_TEXTS)} (the catalogue holds {len(CATALOG_TEXTS)} "
        "items)."
    )


def test_catalog_sample_size_not_an_int(slate: TestClient) -> None:
    response = slate.get("/v1/catalog/sample", params={"n": "ten"})
    assert response.status_code == 422
    assert response.json()["error"] == (
        "invalid request: query.n: Input should be a valid integer, unable to parse string as an "
        "integer"
    )


def test_catalog_sample_without_a_catalogue(dialogue: TestClient) -> None:
    response = dialogue.get("/v1/catalog/sample", params={"n": 3})
    assert response.status_code == 404
    assert response.json() == {
        "error": "this server's env has no item catalogue (env.unwrapped.catalog.texts), so "
        "/v1/catalog/sample has nothing to offer; it serves the demo recommendation page of a "
        "recommendation env such as rlagent/Recommendation-v0. Send your own candidates to "
        "POST /v1/sessions/{id}/recommend instead.",
        "kind": "NoCatalog",
    }
