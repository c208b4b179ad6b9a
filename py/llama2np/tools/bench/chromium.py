"""Driving the page in Debian's Chromium with Playwright, for the browser benchmark and the tests.

`playwright install` cannot download browsers on every machine, so the system's Chromium is
used. The flags keep it from reaching out to the network on its own (background updates, sync),
which on a closed network only produces refused connections and noise.
"""

import os
import shutil
import time
from pathlib import Path

from llama2np.runtime.errors import Llama2npError

CHROMIUM_VARIABLE = "LLAMA2NP_CHROMIUM"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> Path:
    """The Chromium to drive: $LLAMA2NP_CHROMIUM, else `chromium` on the PATH."""
    named = os.environ.get(CHROMIUM_VARIABLE) or shutil.which("chromium") or shutil.which(
        "chromium-browser"
    )
    if not named or not Path(named).exists():
        raise Llama2npError(
            f"no Chromium found; install Debian's chromium package (apt-get install chromium) "
            f"or set {CHROMIUM_VARIABLE} to a Chromium executable."
        )
    return Path(named)


def launch_chromium(playwright: object, headless: bool = True) -> object:
    """A Playwright Browser running the system's Chromium."""
    return playwright.chromium.launch(
        executable_path=str(chromium_path()), args=CHROMIUM_ARGS, headless=headless
    )


def launch_chromium_profile(playwright: object, profile: Path) -> object:
    """A Playwright BrowserContext of the system's Chromium keeping its profile (HTTP cache,
    compiled-code cache, Cache Storage) on disk in `profile`, as a visitor's browser does."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(chromium_path()), args=CHROMIUM_ARGS, headless=True
    )


def page_state(page: object) -> str:
    # The page's Content-Security-Policy forbids eval, which Playwright's wait_for_function
    # needs; evaluate() with a function is allowed.
    return page.evaluate("() => document.body.dataset.state")


def wait_for_state(page: object, states: tuple[str, ...], timeout: float, poll: float = 0.005) -> str:
    """Poll until document.body.dataset.state is one of `states`; return it, or raise
    TimeoutError naming the state the page is stuck in."""
    deadline = time.perf_counter() + timeout
    while True:
        state = page_state(page)
        if state in states:
            return state
        if time.perf_counter() > deadline:
            status = page.evaluate("() => document.getElementById('status')?.textContent ?? ''")
            raise TimeoutError(
                f"the page stayed in state {state!r} for {timeout:.0f} s (waiting for "
                f"{' or '.join(states)}); its status line says: {status.strip()!r}"
            )
        time.sleep(poll)
