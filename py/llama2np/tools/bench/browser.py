"""The benchmark in the browser (`llama2np bench --browser`): the same measurements inside Chromium's Pyodide, plus load time.

The site is served on loopback and opened in a new browser profile kept on disk (a cold cache),
where a first story is written through the page's controls; then it is opened again in the same
profile a few seconds later (a repeat visit: content-hashed assets come from the HTTP cache,
optimised WebAssembly from V8's code cache, as in a visitor's browser). The
speed figures come from `llama2np.runtime.benchmark.measure` run by the page's worker, so the runtime and
the straightforward port are timed by the same code in the same WebAssembly process.
"""

import platform
import tempfile
import time
from pathlib import Path

from llama2np.runtime.errors import Llama2npError
from llama2np.tools.bench.table import format_table

LOAD_TIMEOUT = 120.0  # seconds; a cold Pyodide start takes a few
# What a visitor sees first: a story written through the page's controls shortly after it is
# ready, before anything has run long enough for V8 to optimise it (but for the page's warm-up).
FIRST_STORY_STEPS = 256
THINKING_SECONDS = 1.0
# A repeat visit comes later than right away; this lets the first visit's background work
# (storing the snapshot, V8 writing its code cache) finish, as it would have.
BETWEEN_VISITS_SECONDS = 3.0


def bench_browser(site: Path | None, steps: int, prompt_tokens: int, repeats: int,
                  all_links: bool = True) -> str:
    """The table and load figures for a built site (default: the demo, built for the run)."""
    with tempfile.TemporaryDirectory(prefix="llama2np-bench-") as scratch:
        if site is None:
            from llama2np.tools.site.build import build_site

            site = build_site(Path(scratch) / "site")
        figures = measure_in_browser(site, steps, prompt_tokens, repeats)
        from llama2np.tools.bench.delivery import delivery_table

        delivery = delivery_table(site, all_links)
    extra = {
        "cold load to ready": f"{figures['cold_load_seconds']:.2f} s ({stages(figures['cold_stages'])})",
        "repeat visit to ready": f"{figures['warm_load_seconds']:.2f} s ({stages(figures['warm_stages'])})",
        f"first visit's first story, {FIRST_STORY_STEPS} steps greedy, {THINKING_SECONDS:.0f} s after ready":
            f"{figures['first_story_tokens_per_second']:,.0f} tok/s",
        "bytes on the wire, cold visit": f"{figures['cold_bytes']:,}",
        "bytes on the wire, repeat visit": f"{figures['warm_bytes']:,}",
        "site on disk (all encodings)": f"{figures['site_bytes']:,} bytes",
    }
    where = f"Chromium {figures['browser_version']} on {platform.machine()}, {platform.node() or 'this machine'}"
    table = format_table(figures["results"], f"{figures['model']}, Pyodide in {where}", extra)
    return f"{table}\n\nA first visit by host and link (a new browser profile each):\n{delivery}"


def stages(seconds: dict) -> str:
    return ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items())


def measure_in_browser(site: Path, steps: int, prompt_tokens: int, repeats: int) -> dict:
    """Load times, bytes and the in-page benchmark for a built site, in a new browser profile
    kept on disk like a visitor's (V8 keeps optimised WebAssembly in it for the next visit)."""
    from playwright.sync_api import sync_playwright

    from llama2np.tools.bench.chromium import launch_chromium_profile
    from llama2np.tools.bench.delivery import time_to_ready
    from llama2np.tools.bench.link import Link
    from llama2np.tools.site.serve import start_server

    server, served = start_server(site)
    link = Link(int(served.rstrip("/").rsplit(":", 1)[1]))  # counts the bytes of each visit
    url = f"http://127.0.0.1:{link.port}/"
    try:
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
            context = launch_chromium_profile(playwright, Path(profile))
            page = context.new_page()
            cold_seconds = time_to_ready(page, url)
            cold_bytes = link.reset()
            cold_stages = page.evaluate("() => window.llama2np.loadStages")
            first_story = first_story_speed(page)  # the visitor's first story, then they leave
            page.wait_for_timeout(BETWEEN_VISITS_SECONDS * 1000)
            link.reset()  # the first story's and the service worker's requests in between
            warm_seconds = time_to_ready(page, url)
            warm_bytes = link.reset()
            warm_stages = page.evaluate("() => window.llama2np.loadStages")
            # A short run first, so that the WebAssembly is optimised before it is timed.
            page.evaluate("(o) => window.llama2np.bench(o)",
                          {"steps": 32, "promptTokens": 16, "repeats": 1})
            results = page.evaluate(
                "(o) => window.llama2np.bench(o)",
                {"steps": steps, "promptTokens": prompt_tokens, "repeats": repeats},
            )
            model = page.evaluate("() => window.llama2np.model?.name ?? 'model'")
            product = context.new_cdp_session(page).send("Browser.getVersion")["product"]
            context.close()
    finally:
        link.close()
        server.shutdown()
    return {
        "results": results,
        "model": model,
        "browser_version": product.rsplit("/", 1)[-1],  # HeadlessChrome/156.0.8078.108
        "cold_load_seconds": cold_seconds,
        "cold_stages": cold_stages,
        "warm_stages": warm_stages,
        "warm_load_seconds": warm_seconds,
        "cold_bytes": cold_bytes,
        "warm_bytes": warm_bytes,
        "first_story_tokens_per_second": first_story,
        "site_bytes": sum(f.stat().st_size for f in site.rglob("*") if f.is_file()),
    }


def first_story_speed(page: object) -> float:
    """Decode tokens/s of a greedy story written with the page's controls `THINKING_SECONDS`
    after it became ready, as a visitor's first story is."""
    page.wait_for_timeout(THINKING_SECONDS * 1000)
    page.fill("#temperature", "0")
    page.fill("#steps", str(FIRST_STORY_STEPS))
    page.click("#generate")
    deadline = time.monotonic() + LOAD_TIMEOUT
    while page.evaluate("() => document.body.dataset.state") == "generating":
        if time.monotonic() > deadline:
            raise Llama2npError("the page's first story did not finish in Chromium.")
        time.sleep(0.01)
    return page.evaluate("() => window.llama2np.lastStats?.tokens_per_second ?? 0")

