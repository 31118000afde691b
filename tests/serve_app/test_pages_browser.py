"""The playground and /docs in a real browser (Debian's Chromium driven by Playwright) against the
live tiny-model app: what a person sees, and that no request leaves the server.

Playwright cannot download its own browsers here, so it drives the system's Chromium
(``SDTURBO_CHROMIUM``, default /usr/bin/chromium); the module is skipped, with the reason, where
there is none. Set ``SDTURBO_SCREENSHOT_DIR`` to keep the playground's screenshot
(docs/img/playground.png was made that way).
"""

from __future__ import annotations

import base64
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests.live_app import running_serve_app

CHROMIUM = Path(os.environ.get("SDTURBO_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set SDTURBO_CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
expect = sync_api.expect
# Swagger UI parses 1.5 MB of JavaScript and the model shares two CPU cores with everything else:
# wait up to 30 s for what the page shows (Playwright's default is 5 s).
BROWSER_TIMEOUT_MS = 30_000
expect.set_options(timeout=BROWSER_TIMEOUT_MS)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# No network beyond loopback here, and none wanted: no GPU, QUIC, sync, updates or prefetching.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIDE = 128  # small images keep the CPU model quick


@pytest.fixture(scope="module")
def app_url(cache_dir):
    with running_serve_app({"max_batch_size": "2"}, cache_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class BrowserSession:
    """A page plus every request it made and every script error or policy violation it logged."""

    page: object
    origin: str
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def off_origin(self) -> list[str]:
        return [url for url in self.requests if _origin(url) != self.origin]

    def paths(self) -> set[str]:
        return {urlsplit(url).path for url in self.requests}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _open_session(browser, origin: str) -> BrowserSession:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, service_workers="block")
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    session = BrowserSession(context.new_page(), origin)
    context.on("request", lambda request: session.requests.append(request.url))

    # Anything bound for another origin is recorded above, then stopped here: a leak fails the
    # test instead of hanging it on a network this machine does not have.
    def guard(route):
        if _origin(route.request.url) == origin:
            route.continue_()
        else:
            route.abort()

    context.route("**/*", guard)
    session.page.on("pageerror", lambda error: session.problems.append(f"pageerror: {error}"))

    def on_console(message):
        # The browser logs every 4xx answer as a failed load; the error tests cause those on purpose.
        if message.type == "error" and "Failed to load resource" not in message.text:
            session.problems.append(f"console: {message.text}")

    session.page.on("console", on_console)
    return session


@pytest.fixture()
def session(browser, app_url):
    session = _open_session(browser, app_url)
    yield session
    session.page.context.close()


def _assert_clean(session: BrowserSession) -> None:
    assert session.requests, "the recorder saw no request at all"
    assert session.off_origin() == [], f"requests left the server: {session.off_origin()}"
    assert session.problems == []


def _fill_form(page, prompt: str, **fields: str) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    values = {"Width": str(SIDE), "Height": str(SIDE), **fields}
    for label, value in values.items():
        page.get_by_label(label, exact=True).fill(value)


def _generate(page, trigger) -> dict:
    """Run ``trigger`` (a click or Enter), wait for /predict's answer and the page to settle; the JSON."""
    with page.expect_response(lambda r: r.url.endswith("/predict")) as answer:
        trigger()
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    return answer.value.json()


def test_generate_shows_the_image_with_its_seed_and_metadata(session, tmp_path):
    page = session.page
    page.goto(session.origin + "/")
    # The model selector is filled from GET /models: this server serves the one tiny preset.
    model = page.get_by_label("Model", exact=True)
    expect(model.locator("option")).to_have_count(1)
    expect(model).to_have_value("tiny")
    _fill_form(page, "a lighthouse on a cliff at sunset")

    # 1. Hold the request in flight to see the busy state, then let it go.
    held = []
    page.route("**/predict", lambda route: held.append(route))
    page.get_by_label("Prompt", exact=True).press("Enter")
    deadline = time.monotonic() + 30
    while not held:
        assert time.monotonic() < deadline, "Enter sent no request"
        page.wait_for_timeout(50)
    generate = page.get_by_role("button", name="Generating…")
    expect(generate).to_be_disabled()
    expect(page.locator("#result")).to_have_attribute("aria-busy", "true")
    expect(page.get_by_role("status")).to_contain_text("Generating")
    with page.expect_response(lambda r: r.url.endswith("/predict")) as answer:
        held[0].continue_()
    page.unroute("**/predict")
    body = answer.value.json()

    # 2. The image as it came back, with its seed, size, batch size, cached flag and timings.
    image = page.locator("#result-image")
    expect(image).to_be_visible()
    expect(image).to_have_js_property("naturalWidth", SIDE)
    expect(image).to_have_js_property("complete", True)
    src = image.get_attribute("src")
    assert src == f"data:image/jpeg;base64,{body['image']}"
    assert Image.open(io.BytesIO(base64.b64decode(body["image"]))).size == (SIDE, SIDE)
    expect(page.locator("#result-seed")).to_have_text(str(body["seed"]))
    expect(page.locator("#result-size")).to_have_text(f"{SIDE} × {SIDE} JPEG")
    expect(page.locator("#result-batch")).to_have_text(str(body["batch_size"]))
    expect(page.locator("#result-model")).to_have_text("tiny (preset:tiny)")
    expect(page.locator("#result-cached")).to_have_text("no")
    # Rounded as the page rounds (JavaScript's toFixed: 110.5 -> "111"; Python's format gives "110").
    total = page.evaluate("t => t.toFixed(0)", body["timings_ms"]["total"])
    expect(page.locator("#result-timings")).to_contain_text(f"total {total} ms")
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    expect(page.locator("#result")).to_have_attribute("aria-busy", "false")
    _assert_clean(session)


def test_seed_keep_and_reroll_and_the_session_strip(session):
    page = session.page
    page.goto(session.origin + "/")
    _fill_form(page, "a red fox in the snow")
    page.get_by_label("Output format").select_option("png")
    first = _generate(page, lambda: page.get_by_role("button", name="Generate").click())

    # 1. Keep: the shown seed goes into the field; the same seed twice is answered from the cache.
    page.get_by_role("button", name="Keep", exact=True).click()
    expect(page.get_by_label("Seed", exact=True)).to_have_value(str(first["seed"]))
    kept = _generate(page, lambda: page.get_by_role("button", name="Generate").click())
    again = _generate(page, lambda: page.get_by_role("button", name="Generate").click())
    assert kept["seed"] == again["seed"] == first["seed"] and again["cached"] is True
    expect(page.locator("#result-cached")).to_have_text("yes")
    expect(page.locator("#result-image")).to_have_attribute("src", f"data:image/png;base64,{again['image']}")

    # 2. Re-roll: the field empties and the server draws a new seed.
    page.get_by_role("button", name="Re-roll", exact=True).click()
    expect(page.get_by_label("Seed", exact=True)).to_have_value("")
    rolled = _generate(page, lambda: page.get_by_label("Prompt", exact=True).press("Enter"))
    assert rolled["seed"] != first["seed"]

    # 3. The strip holds every result, newest first; selecting the oldest shows it again.
    expect(page.locator("#history li")).to_have_count(4)
    oldest = page.locator("#history button").last
    expect(oldest).to_have_attribute("aria-label", f"Result 1: a red fox in the snow (seed {first['seed']})")
    oldest.focus()
    page.keyboard.press("Enter")  # keyboard, not only the mouse
    expect(oldest).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#result-seed")).to_have_text(str(first["seed"]))
    expect(page.locator("#result-image")).to_have_attribute("src", f"data:image/png;base64,{first['image']}")

    # 4. The screenshot for the README (kept only when asked for).
    shot = page.screenshot(full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("SDTURBO_SCREENSHOT_DIR"):
        target = Path(os.environ["SDTURBO_SCREENSHOT_DIR"]) / "playground.png"
        target.write_bytes(shot)
    _assert_clean(session)


@pytest.mark.parametrize(
    "label, value, corrected, field",
    [
        ("Width", "100", "64", "width"),  # not a multiple of 8
        ("Seed", "-1", "7", "seed"),
        ("Steps", "9", "1", "num_inference_steps"),
        ("Guidance", "lots", "0", "guidance_scale"),  # sent as typed: the API says what is wrong
    ],
)
def test_an_invalid_value_shows_the_api_message_next_to_its_field(session, label, value, corrected, field):
    page = session.page
    page.goto(session.origin + "/")
    _fill_form(page, "a lighthouse", **{label: value})
    with page.expect_response(lambda r: r.url.endswith("/predict")) as answer:
        page.get_by_role("button", name="Generate").click()
    assert answer.value.status == 422
    error = answer.value.json()["error"]
    assert error["field"] == field

    control = page.get_by_label(label, exact=True)
    expect(page.locator(f"#{field}-error")).to_have_text(error["message"])
    expect(control).to_have_attribute("aria-invalid", "true")
    expect(control).to_be_focused()
    # Screen readers hear it with the field (aria-describedby), after any hint.
    expect(control).to_have_accessible_description(re.compile(re.escape(error["message"]) + "$"))
    expect(page.get_by_role("status")).to_have_text("Error 422 (validation_error)")
    expect(page.locator("#result-image")).to_be_hidden()

    # Corrected, the next Generate clears the message.
    control.fill(corrected)
    _generate(page, lambda: page.get_by_role("button", name="Generate").click())
    expect(page.locator(f"#{field}-error")).to_be_empty()
    expect(control).not_to_have_attribute("aria-invalid", "true")
    _assert_clean(session)


def test_docs_render_the_predict_operation_from_this_service(session):
    page = session.page
    page.goto(session.origin + "/")
    page.get_by_role("link", name="API docs").click()
    expect(page).to_have_url(session.origin + "/docs")
    predict = page.locator('.opblock-summary-path[data-path="/predict"]')
    expect(predict).to_be_visible()
    predict.click()  # opens the operation: its request schema renders from /openapi.json
    expect(page.locator(".opblock-body").first).to_contain_text("prompt")
    assert {"/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json"} <= session.paths()
    _assert_clean(session)


def test_the_recorder_sees_a_request_to_another_origin(browser, app_url):
    # The no-leak assertions above can fail: a page that does load from elsewhere is caught.
    session = _open_session(browser, app_url)
    try:
        session.page.set_content('<img src="http://192.0.2.1/pixel.png">')
        deadline = time.monotonic() + 10
        while not session.off_origin():
            assert time.monotonic() < deadline, "the outside request was not recorded"
            session.page.wait_for_timeout(50)
        assert session.off_origin() == ["http://192.0.2.1/pixel.png"]
    finally:
        session.page.context.close()
