"""What a first visit costs, host by host and link by link (`llama2np bench --browser`).

Each visit opens the built site in a new browser profile (a cold cache) through a Link that
counts the bytes sent to the browser and, for the slower links, shapes them; a second visit
in the same profile a few seconds later is the repeat visit.
"""

import tempfile
import time
from pathlib import Path

from llama2np.runtime.errors import Llama2npError
from llama2np.tools.bench.hosts import HOSTS, nginx_available, serving
from llama2np.tools.bench.link import LINKS, LOCALHOST, Link, LinkSpeed

LOAD_TIMEOUT = 180.0
BETWEEN_VISITS_SECONDS = 3.0


def delivery_table(site: Path, all_links: bool = True) -> str:
    """Bytes on the wire and seconds to ready of a cold visit per host and link (localhost
    only without `all_links`), and of a repeat visit from localhost, as a text table."""
    rows = []
    for host in HOSTS:
        if host == "nginx" and not nginx_available():
            rows.append(f"| {host} | not installed (apt-get install nginx) | | |")
            continue
        for speed in LINKS if all_links else (LOCALHOST,):
            cold, received, repeat = visit_twice(site, host, speed)
            again = f"{repeat:.2f} s" if speed is LOCALHOST else ""
            rows.append(f"| {host} | {speed.name} | {received / 1e6:.2f} MB | {cold:.2f} s | {again} |")
    head = "| host | link | first visit on the wire | ready after | repeat visit ready |\n" \
           "|---|---|---:|---:|---:|"
    return "\n".join([head, *rows])


def visit_twice(site: Path, host: str, speed: LinkSpeed) -> tuple[float, int, float]:
    """(seconds to ready cold, bytes of that visit, seconds to ready on a repeat visit)."""
    from playwright.sync_api import sync_playwright

    from llama2np.tools.bench.chromium import launch_chromium_profile

    with serving(site, host) as port, sync_playwright() as playwright, \
            tempfile.TemporaryDirectory() as profile:
        link = Link(port, speed)
        try:
            context = launch_chromium_profile(playwright, Path(profile))
            page = context.new_page()
            url = f"http://127.0.0.1:{link.port}/"
            cold = time_to_ready(page, url)
            received = link.reset()
            page.wait_for_timeout(BETWEEN_VISITS_SECONDS * 1000)
            repeat = time_to_ready(page, url) if speed is LOCALHOST else 0.0
            context.close()
        finally:
            link.close()
    return cold, received, repeat


def time_to_ready(page: object, url: str) -> float:
    from llama2np.tools.bench.chromium import wait_for_state

    start = time.perf_counter()
    page.goto(url)
    state = wait_for_state(page, ("ready", "error"), LOAD_TIMEOUT)
    if state != "ready":
        message = page.evaluate("() => document.getElementById('status').textContent")
        raise Llama2npError(f"the page failed to load in Chromium: {message.strip()}")
    return time.perf_counter() - start
