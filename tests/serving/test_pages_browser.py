"""The pages in a real headless browser: Debian's Chromium driven by Playwright.

A uvicorn server runs the app in a thread on a free loopback port; one browser serves the
module. Screenshots go to each test's ``tmp_path`` and, when ``RLAGENT_SCREENSHOTS`` names a
folder, there too. Skipped where Playwright or ``/usr/bin/chromium`` is missing (``.ci/run``
installs Chromium, the ``dev`` extra Playwright).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("RLAGENT_CHROMIUM", "/usr/bin/chromium"))

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install rlagent[dev])"
)
if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium, or set RLAGENT_CHROMIUM)",
        allow_module_level=True,
    )
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from pages_support import (  # noqa: E402
    logged_clicks,
    logged_decisions,
    logged_feedback,
    make_page_agent,
    make_page_log,
)
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from rlagent.serving import (  # noqa: E402
    InteractionLog,
    ServeConfig,
    ServedAgent,
    create_app,
)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAX_TEXT_CHARS = 200
TIMEOUT_MS = 10_000


@dataclass
class Server:
    """A running app: its base URL and the log it writes to."""

    url: str
    log: Any


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _serve(kind: str, folder: Path, agent: Any = None) -> Iterator[Server]:
    if agent is None:
        agent = make_page_agent(kind)
        log = make_page_log(folder, kind)
    else:
        log = InteractionLog(
            folder / "real.db",
            model_hash=agent.model_hash,
            env_id=agent.settings["env_id"],
            env_kwargs=agent.settings["env_kwargs"],
        )
    app = create_app(agent, log=log, config=ServeConfig(max_text_chars=MAX_TEXT_CHARS))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    url = f"http://127.0.0.1:{port}"
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the {kind} server did not become healthy at {url}")
            time.sleep(0.05)
        yield Server(url, log)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def dialogue_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve("dialogue", tmp_path_factory.mktemp("dialogue"))


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real model (tiny random encoder, sharpened head) behind the same pages."""
    from tiny_models import TINY, sharpen

    from rlagent.agents import make_ppo, save_model

    folder = tmp_path_factory.mktemp("real")
    model = sharpen(make_ppo("rlagent/CustomerService-v0", **TINY))
    agent = ServedAgent.load(save_model(model, folder / "model"))
    yield from _serve("dialogue", folder, agent)


@pytest.fixture(scope="module")
def slate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve("slate", tmp_path_factory.mktemp("slate"))


@dataclass
class Visit:
    """A browser page, with what it requested and any script errors it raised."""

    page: Page
    origin: str
    shots: list[Path]
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> None:
        for folder in self.shots:
            self.page.screenshot(path=str(folder / name), full_page=True)

    def check_clean(self) -> None:
        """Nothing was requested from elsewhere; no script error, no blocked content."""
        foreign = [u for u in self.requests if not u.startswith(self.origin + "/")]
        assert foreign == [], foreign
        assert self.errors == [], self.errors


@pytest.fixture
def visit(browser: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Visit]:
    shots = [tmp_path]
    if os.environ.get("RLAGENT_SCREENSHOTS"):
        folder = Path(os.environ["RLAGENT_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shots.append(folder)
    context = browser.new_context(viewport={"width": 1200, "height": 820})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    server = request.getfixturevalue(request.param)
    result = Visit(page, server.url, shots)
    page.on("request", lambda r: result.requests.append(r.url))
    page.on("pageerror", lambda e: result.errors.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: (
            result.errors.append(f"console: {m.text}")
            if "Content Security Policy" in m.text
            else None
        ),
    )
    try:
        yield result
    finally:
        context.close()


dialogue_visit = pytest.mark.parametrize("visit", ["dialogue_server"], indirect=True)
real_visit = pytest.mark.parametrize("visit", ["real_server"], indirect=True)
slate_visit = pytest.mark.parametrize("visit", ["slate_server"], indirect=True)


def _say(page: Page, text: str) -> None:
    """Type ``text`` and press Enter (the keyboard path a person takes)."""
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")


def _say_first(page: Page, text: str) -> str:
    """Like :func:`_say`; returns the id of the session the page's turn went to."""
    with page.expect_response(lambda r: r.url.endswith("/turns")) as answer:
        _say(page, text)
    return answer.value.url.rsplit("/", 2)[-2]


def _open_chat(visit: Visit) -> Page:
    page = visit.page
    page.goto(f"{visit.origin}/pages/chat.html")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


@dialogue_visit
def test_index_sends_to_the_page_for_the_agent(visit: Visit) -> None:
    visit.page.goto(f"{visit.origin}/")
    visit.page.wait_for_url("**/pages/chat.html")
    expect(visit.page.get_by_role("heading", name="Chat with the agent")).to_be_visible()
    visit.check_clean()


@dialogue_visit
def test_chat_resolves_a_request(visit: Visit, dialogue_server: Server) -> None:
    page = _open_chat(visit)
    expect(page.locator("#info")).to_contain_text("Model stub0dialogu")
    expect(page.locator("#logging")).to_contain_text("Every decision is logged")

    session_id = _say_first(page, "my card has not arrived")
    messages = page.locator("#transcript li")
    expect(messages).to_have_count(2)
    expect(messages.nth(0)).to_contain_text("my card has not arrived")
    expect(messages.nth(1)).to_contain_text("Could you tell me a bit more")
    expect(page.locator("#action")).to_have_text("ask_clarify")
    bars = page.locator("#probabilities li")
    expect(bars).to_have_count(6)
    expect(bars.first).to_have_class("chosen")
    expect(bars.first).to_contain_text("ask_clarify")
    percents = [float(t.rstrip("%")) for t in page.locator("#probabilities .pct").all_inner_texts()]
    assert percents == sorted(percents, reverse=True) and 50 < percents[0] < 100
    expect(page.locator("#done")).to_be_hidden()
    expect(page.locator("#message")).to_be_focused()

    _say(page, "I ordered it two weeks ago")
    expect(messages).to_have_count(4)
    expect(page.locator("#action")).to_have_text("card_arrival")
    expect(page.locator("#done")).to_be_visible()
    expect(page.locator("#done")).to_contain_text("Conversation done")
    expect(page.get_by_role("button", name="Thumbs up")).to_be_visible()
    visit.screenshot("chat-done.png")

    decisions = logged_decisions(dialogue_server.log)
    ours = [(step, name) for sid, step, name in decisions if sid == session_id]
    assert ours == [(0, "ask_clarify"), (1, "card_arrival")]
    visit.check_clean()


@real_visit
def test_a_real_model_chats_until_done_and_every_decision_is_logged(
    visit: Visit, real_server: Server
) -> None:
    page = _open_chat(visit)
    requests = ["my card has not arrived", "it was ordered two weeks ago", "still nothing"]
    session_id = _say_first(page, requests[0])
    done = page.locator("#done")
    turns = 1
    expect(page.locator("#transcript li")).to_have_count(2)
    while not done.is_visible():
        assert turns < 20, "the chat did not end within the env's max_turns"
        _say(page, requests[turns % len(requests)])
        turns += 1
        expect(page.locator("#transcript li")).to_have_count(2 * turns)
    expect(page.locator("#action")).not_to_be_empty()
    expect(page.locator("#probabilities li.chosen")).to_have_count(1)
    visit.screenshot("chat-real-model.png")
    page.get_by_role("button", name="Thumbs down").click()
    expect(page.locator("#feedback-status")).to_contain_text("recorded")
    decisions = [d for d in logged_decisions(real_server.log) if d[0] == session_id]
    assert [step for _, step, _ in decisions] == list(range(turns))
    ours = [f for f in logged_feedback(real_server.log) if f["session_id"] == session_id]
    assert len(ours) == 1 and ours[0]["resolved"] is False and ours[0]["rating"] == 1
    visit.check_clean()


@dialogue_visit
def test_chat_thumbs_up_is_recorded(visit: Visit, dialogue_server: Server) -> None:
    page = _open_chat(visit)
    session_id = _say_first(page, "a transfer failed")
    expect(page.locator("#transcript li")).to_have_count(2)
    _say(page, "yesterday, to my landlord")
    expect(page.locator("#done")).to_be_visible()

    page.get_by_role("button", name="Thumbs up").click()
    expect(page.locator("#feedback-status")).to_have_text("Thank you: your thumbs up was recorded.")
    expect(page.get_by_role("button", name="Thumbs up")).to_be_disabled()
    visit.screenshot("chat-feedback.png")
    ours = [f for f in logged_feedback(dialogue_server.log) if f["session_id"] == session_id]
    assert len(ours) == 1
    assert ours[0]["resolved"] is True and ours[0]["rating"] == 5

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#transcript li")).to_have_count(0)
    expect(page.locator("#feedback")).to_be_hidden()
    expect(page.locator("#decision-empty")).to_be_visible()
    visit.check_clean()


@dialogue_visit
def test_chat_shows_api_errors(visit: Visit) -> None:
    page = _open_chat(visit)
    long_text = "x" * (MAX_TEXT_CHARS + 1)
    _say(page, long_text)
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text(
        f"(HTTP 422): text is {MAX_TEXT_CHARS + 1} characters; the limit is {MAX_TEXT_CHARS}"
    )
    expect(page.locator("#message")).to_have_value(long_text)  # kept, to shorten and resend
    expect(page.locator("#transcript li")).to_have_count(0)
    visit.screenshot("chat-error.png")

    _say(page, "my card was stolen")
    expect(alert).to_be_hidden()
    expect(page.locator("#transcript li")).to_have_count(2)
    visit.check_clean()


@slate_visit
def test_recommend_page_shows_a_slate_and_records_a_click(
    visit: Visit, slate_server: Server
) -> None:
    page = visit.page
    page.goto(f"{visit.origin}/")
    page.wait_for_url("**/pages/recommend.html")
    cards = page.locator("#slate .card")
    expect(cards).to_have_count(2)
    expect(page.locator("#round")).to_contain_text("Round 1: the agent shows 2 of 6 candidates")
    expect(cards.first).to_contain_text("probability")
    expect(page.locator("#candidates li")).to_have_count(6)
    expect(page.locator("#probabilities li.chosen")).to_have_count(2)
    expect(page.locator("#logging")).to_contain_text("Every decision is logged")
    visit.screenshot("recommend-slate.png")

    chosen = int(cards.first.get_attribute("data-candidate"))
    text = cards.first.locator(".text").inner_text()
    cards.first.click()
    expect(page.locator("#click-status")).to_have_text(f"Recorded: you chose “{text}”.")
    expect(page.locator("#history li")).to_have_text([text])
    expect(page.locator("#round")).to_contain_text("Round 2")
    clicks = logged_clicks(slate_server.log)
    assert clicks[-1]["candidate"] == chosen and chosen in clicks[-1]["slate"]
    session_id = clicks[-1]["session_id"]

    page.get_by_role("button", name="None of these").click()
    expect(page.locator("#click-status")).to_have_text("Recorded: none of round 2's items.")
    expect(page.locator("#round")).to_contain_text("Round 3")
    clicks = [c for c in logged_clicks(slate_server.log) if c["session_id"] == session_id]
    assert [c["candidate"] for c in clicks] == [chosen, None]
    visit.screenshot("recommend-after-clicks.png")
    visit.check_clean()


@dialogue_visit
def test_chat_after_the_session_ended_starts_a_new_one(
    visit: Visit, dialogue_server: Server
) -> None:
    page = _open_chat(visit)
    session_id = _say_first(page, "my card was stolen")
    expect(page.locator("#transcript li")).to_have_count(2)
    assert httpx.delete(f"{visit.origin}/v1/sessions/{session_id}").status_code == 200

    _say(page, "it happened on the bus")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("(HTTP 404): unknown session id")
    expect(alert).to_contain_text("Press Send again to start a new conversation.")
    page.get_by_role("button", name="Send").click()
    expect(alert).to_be_hidden()
    expect(page.locator("#transcript li")).to_have_count(4)
    visit.check_clean()
