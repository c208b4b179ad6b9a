"""The built site from three hosts as their owners run them, through a link that counts bytes:
every host serves a page that becomes ready, writes run.c's story, and costs a first visit
at most 5.5 MB (llama2np serve, which sends Brotli) or 6.5 MB (hosts that send files as they
are, where the page fetches and decodes the compressed siblings itself)."""

import functools
import http.server
import re
import shutil
import threading
import time

import pytest
from llama2np.tools.bench.hosts import HOSTS, serving
from llama2np.tools.bench.link import Link, LinkSpeed
from support import GOLDEN_T0, QuietServer

pytestmark = pytest.mark.e2e

MEGABYTE = 1_000_000
FIRST_VISIT_BYTES = {"llama2np serve": 5.5 * MEGABYTE}
ANY_HOST_BYTES = 6.5 * MEGABYTE


@pytest.mark.parametrize("host", HOSTS)
def test_a_first_visit_from_each_host_is_ready_within_its_bytes(host, built_site, visit_with,
                                                                golden):
    with serving(built_site, host) as port:
        link = Link(port)
        try:
            visit = visit_with(f"http://127.0.0.1:{link.port}/")
            visit.open()
            received = link.reset()
            assert received <= FIRST_VISIT_BYTES.get(host, ANY_HOST_BYTES), received
            assert received > 3 * MEGABYTE, received  # it did count the download
            assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)
        finally:
            visit.page.context.close()
            link.close()


def test_the_page_decodes_brotli_itself_where_the_host_sends_files_as_they_are(built_site,
                                                                               visit_with):
    with serving(built_site, "http.server") as port:
        link = Link(port)
        try:
            visit = visit_with(f"http://127.0.0.1:{link.port}/")
            requested = []
            visit.page.context.on("request", lambda request: requested.append(request.url))
            visit.open()
            assert any(url.endswith("pyodide.asm.wasm.br") for url in requested), requested
            assert not any(url.endswith("pyodide.asm.wasm") for url in requested)
        finally:
            visit.page.context.close()
            link.close()


def test_a_site_copied_without_its_compressed_siblings_still_loads(built_site, tmp_path,
                                                                   visit_with, golden):
    bare = tmp_path / "bare"
    shutil.copytree(built_site, bare, ignore=shutil.ignore_patterns("*.br", "*.gz"))
    with serving(bare, "http.server") as port:
        visit = visit_with(f"http://127.0.0.1:{port}/")
        visit.open()
        assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)


def with_header(name: str, value: str):
    """A route handler that passes the host's answer on with one header set as a host might."""
    def handle(route) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, name: value})

    return handle


@pytest.mark.parametrize(("header", "value", "phrases"), [
    ("content-type", "application/octet-stream",
     ['sends the page\'s scripts (.js files) as "application/octet-stream"', "text/javascript"]),
    ("content-security-policy", "script-src 'self'",
     ["Content-Security-Policy forbids WebAssembly", "'wasm-unsafe-eval'"]),
], ids=["scripts of a wrong type", "a policy that forbids WebAssembly"])
def test_a_host_setting_that_stops_the_worker_is_named(visit, header, value, phrases):
    visit.page.context.route("**/worker.js", with_header(header, value))
    visit.expected_errors = True
    visit.open(state="error")
    assert all(phrase in visit.status() for phrase in phrases), visit.status()


def test_the_load_bar_counts_the_download_and_its_time_over_a_slow_link(built_site, visit_with):
    with serving(built_site, "llama2np serve") as port:
        link = Link(port, LinkSpeed("8 Mbit/s, 40 ms", 8e6, 0.040))
        try:
            visit = visit_with(f"http://127.0.0.1:{link.port}/")
            labels = []
            visit.page.goto(visit.url)
            deadline = time.monotonic() + 90
            while visit.state() == "loading" and time.monotonic() < deadline:
                labels.append(visit.text("progress-label"))
                time.sleep(0.1)
            assert visit.state() == "ready", visit.status()
            counted = [label for label in labels if re.match(r"Downloading [\d.]+ of 5\.\d MB", label)]
            assert counted, labels
            assert any(re.search(r", about \d+ s left…$", label) for label in labels), labels
            assert all(label.strip("…") for label in labels), labels  # never an empty stage
            visit.page.wait_for_timeout(500)
            visit.page.goto(visit.url)
            assert visit.text("progress-label").startswith(("Loading from this browser's cache", "Ready"))
            assert wait_ready(visit)
        finally:
            visit.page.context.close()
            link.close()


def wait_ready(visit) -> bool:
    deadline = time.monotonic() + 90
    while visit.state() == "loading" and time.monotonic() < deadline:
        time.sleep(0.05)
    return visit.state() == "ready"


def without(site, tmp_path, *patterns):
    copy = tmp_path / "site"
    shutil.copytree(site, copy, ignore=shutil.ignore_patterns(*patterns))
    return copy


def test_a_missing_webassembly_ends_the_load_with_a_sentence(built_site, tmp_path, visit_with):
    with serving(without(built_site, tmp_path, "pyodide.asm.wasm*"), "http.server") as port:
        visit = visit_with(f"http://127.0.0.1:{port}/")
        visit.expected_errors = True  # the browser logs the 404
        visit.open(state="error")
        assert "pyodide.asm.wasm" in visit.status() and "HTTP 404" in visit.status()


def test_a_damaged_library_is_named(built_site, visit_with):
    with serving(built_site, "http.server") as port:
        visit = visit_with(f"http://127.0.0.1:{port}/")
        data = bytearray(next(built_site.glob("pyodide-*/python_stdlib.zip.br")).read_bytes())
        data[len(data) // 2] ^= 0xFF
        visit.page.context.route("**/python_stdlib.zip.br",
                                 lambda route: route.fulfill(status=200, body=bytes(data)))
        visit.expected_errors = True
        visit.open(state="error")
        assert "python_stdlib.zip" in visit.status(), visit.status()


def test_webassembly_sent_with_a_wrong_type_by_a_compressing_host_still_runs(visit):
    visit.page.context.route("**/pyodide.asm.wasm", with_header("content-type", "application/octet-stream"))
    visit.open()


def test_a_probe_garbled_by_a_wrong_encoding_is_a_sentence(built_site, visit_with):
    class Lying(http.server.SimpleHTTPRequestHandler):
        def end_headers(self) -> None:
            if self.path.endswith("encoding-probe.bin"):  # sent as it is, labelled gzip
                self.send_header("Content-Encoding", "gzip")
            super().end_headers()

        def log_message(self, *args) -> None:
            pass

    server = QuietServer(
        ("127.0.0.1", 0), functools.partial(Lying, directory=str(built_site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        visit = visit_with(f"http://127.0.0.1:{server.server_port}/")
        visit.expected_errors = True
        visit.open(state="error")
        assert "encoding-probe.bin" in visit.status() and "Content-Encoding" in visit.status()
    finally:
        server.shutdown()


def test_a_stored_snapshot_that_cannot_be_instantiated_gives_way_to_a_fresh_start(visit, golden):
    visit.open()
    visit.page.wait_for_timeout(500)  # the snapshot is stored in the background
    halved = visit.page.evaluate("""async () => {
        const cache = await caches.open('llama2np-python-snapshot');
        const [key] = await cache.keys();
        const bytes = new Uint8Array(await (await cache.match(key)).arrayBuffer()).slice(0, 1 << 24);
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
        const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
        await cache.put(key, new Response(bytes, { headers: { 'X-Sha256': hex } }));
        return bytes.length;
    }""")
    assert halved == 1 << 24
    visit.expected_errors = True  # Pyodide logs the failed instantiation
    visit.open()
    assert visit.page.evaluate("() => window.llama2np.fromSnapshot") is False
    assert visit.write(temperature=0, steps=256) == golden(GOLDEN_T0)


def test_a_file_that_arrives_damaged_is_fetched_once_more_past_every_stored_copy(built_site,
                                                                                 visit_with):
    with serving(built_site, "http.server") as port:
        # Playwright's routing and a service worker's registration do not mix: no service worker.
        visit = visit_with(f"http://127.0.0.1:{port}/", service_workers="block")
        answers = []

        def first_garbled(route):
            answers.append(route.request.url)
            if len(answers) == 1:
                route.fulfill(status=200, body=b"\x00" * 1000)  # not Brotli at all
            else:
                route.continue_()

        visit.page.context.route("**/model.bin.br", first_garbled)
        visit.open()
        assert len(answers) == 2, answers


def test_a_host_that_stops_sending_is_given_up_on_with_a_sentence(built_site, visit_with):
    """A download silent for `quietSeconds` (30 in the page; 2 here, through the module other
    pages use, so as not to wait half a minute) is given up on with a sentence."""
    class Stalling(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/blank.html":  # a page of the site's origin that loads nothing itself
                page = b"<!doctype html><title>blank</title>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            if not self.path.endswith("pyodide.asm.wasm.br"):
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"\x00" * 1000)
            self.wfile.flush()
            time.sleep(15)  # then nothing more: the page gives up first

        def log_message(self, *args) -> None:
            pass

    server = QuietServer(
        ("127.0.0.1", 0), functools.partial(Stalling, directory=str(built_site)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        visit = visit_with(f"http://127.0.0.1:{server.server_port}/blank.html")
        visit.expected_errors = True
        visit.page.goto(visit.url)
        message = visit.page.evaluate("""async () => {
            const { load } = await import("/llama2np.js");
            try {
                await load({ quietSeconds: 2 });
                return "loaded";
            } catch (error) {
                return error.message;
            }
        }""")
        assert message.startswith("The server sent nothing of pyodide.asm.wasm.br for 2 s;"), message
    finally:
        server.shutdown()
