"""The built site served on loopback and opened in Debian's Chromium through Playwright.

Every test gets a fresh browser context (an empty cache) and fails if the page logs an error
or asks anything of another origin.
"""

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from llama2np.tools.bench.chromium import launch_chromium, wait_for_state
from llama2np.tools.site.serve import start_server

LOAD_TIMEOUT = 90  # seconds; a cold start of Pyodide takes a few
# Presses Stop the moment the story has the given number of characters; window.stopPressed
# holds when (performance.now()).
STOP_WHEN_WRITTEN = """(characters) => {
    delete window.stopPressed;
    const output = document.getElementById("output"), stop = document.getElementById("stop");
    const watch = new MutationObserver(() => {
        if (output.textContent.length >= characters && !stop.disabled) {
            watch.disconnect();
            window.stopPressed = performance.now();
            stop.click();
        }
    });
    watch.observe(output, { childList: true, subtree: true, characterData: true });
}"""
RUN_TIMEOUT = 120


@pytest.fixture(scope="session")
def site_url(built_site):
    server, url = start_server(built_site)
    yield url
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


class Visit:
    """One page of the demo, with what it logged and requested."""

    def __init__(self, page, url: str) -> None:
        self.page, self.url = page, url
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.expected_errors = False
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", self._check_origin)
        page.on("worker", lambda w: w.on("console", lambda m: m.type == "error" and self.errors.append(m.text)))

    def _check_origin(self, request) -> None:
        # blob: addresses are the page's own (the worker runs checked bytes from one).
        if urlsplit(request.url.removeprefix("blob:"))[:2] != urlsplit(self.url)[:2] and \
                not request.url.startswith("data:"):
            self.foreign.append(request.url)

    def open(self, state: str = "ready") -> None:
        self.page.goto(self.url)
        assert wait_for_state(self.page, ("ready", "error"), LOAD_TIMEOUT) == state, self.status()

    def state(self) -> str:
        return self.page.evaluate("() => document.body.dataset.state")

    def text(self, element_id: str) -> str:
        return self.page.evaluate("(id) => document.getElementById(id).textContent", element_id)

    def status(self) -> str:
        return self.text("status")

    def output(self) -> str:
        return self.text("output")

    def set(self, prompt: str = "", temperature: float = 1.0, topp: float = 0.9, seed: int = 42,
            steps: int = 256) -> None:
        self.page.fill("#prompt", prompt)
        self.page.fill("#temperature", str(temperature))
        self.page.fill("#topp", str(topp))
        self.page.fill("#seed", str(seed))
        self.page.fill("#steps", str(steps))

    def write(self, **settings) -> str:
        """Generate with these settings and return the whole story."""
        self.set(**settings)
        self.page.click("#generate")
        self.wait_until_written()
        return self.output()

    def focus_when_writing(self) -> None:
        """Note, in window.focusWhileWriting, which element has the focus the moment the page
        starts writing (a fast story may be over before the test could look)."""
        self.page.evaluate("""() => {
            delete window.focusWhileWriting;
            const watch = new MutationObserver(() => {
                if (document.body.dataset.state !== "generating") return;
                window.focusWhileWriting = document.activeElement.id;
                watch.disconnect();
            });
            watch.observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
        }""")

    def focused_while_writing(self) -> str:
        self.page.wait_for_function("() => window.focusWhileWriting !== undefined")
        return self.page.evaluate("() => window.focusWhileWriting")

    def generate_and_stop(self, characters: int = 1) -> None:
        """Press Generate, then Stop as soon as the story has `characters` characters: from
        inside the page (an observer of the story), so that a story this fast cannot end first
        on a busy machine. Waits until the page is ready again."""
        self.page.evaluate(STOP_WHEN_WRITTEN, characters)
        self.page.click("#generate")
        self.page.wait_for_function("() => window.stopPressed !== undefined", timeout=RUN_TIMEOUT * 1000)
        self.wait_until_written()

    def wait_until_written(self) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT
        while self.state() == "generating":
            assert time.monotonic() < deadline, "the story did not finish"
            time.sleep(0.02)
        assert self.state() == "ready", self.status()


@pytest.fixture
def visit_with(browser, site_url):
    """Opens visits in fresh browser contexts with the given options (viewport, color_scheme,
    has_touch, permissions...), each checked like `visit` when the test ends."""
    visits = []

    def open_context(url: str = site_url, **options) -> Visit:
        options.setdefault("viewport", {"width": 1200, "height": 800})
        context = browser.new_context(**options)
        v = Visit(context.new_page(), url)
        visits.append(v)
        return v

    yield open_context
    for v in visits:
        v.page.context.close()
    for v in visits:
        assert not v.foreign, f"requests left the local server: {v.foreign}"
        if not v.expected_errors:
            assert not v.errors, f"the page logged errors: {v.errors}"


@pytest.fixture
def visit(visit_with):
    return visit_with()


@pytest.fixture
def results_dir() -> Path:
    folder = Path(__file__).resolve().parents[2] / "test-results"
    folder.mkdir(exist_ok=True)
    return folder

