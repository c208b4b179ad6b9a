"""`llama2np serve` against a hostile client: nothing outside the site, a status code for every
path, idle connections closed, and the server answering on, without a traceback in its log.

The server runs as the real command in a subprocess with its address space capped; its standard
error is read at the end to prove that nothing it met made it print a traceback.
"""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hostile import MEMORY_LIMIT_MB, folder_state
from llama2np.tools.site.serve import make_server, start_server

pytestmark = pytest.mark.hostile

SECRET = b"secret bytes that must never leave this machine 7f3a9c"
HASHED = "web-0123456789"
TIMEOUT = 2.0  # the server's --timeout in these tests


def make_site(root: Path) -> Path:
    """A small site: a page, a content-hashed folder, a plain folder, and links that point out
    of the site; beside it, a secret file."""
    (root / "secret.txt").write_bytes(SECRET)
    site = root / "site"
    (site / HASHED).mkdir(parents=True)
    (site / "sub").mkdir()
    (site / "index.html").write_text("<!doctype html><title>page</title>")
    (site / HASHED / "app.js").write_text("console.log(1)")
    (site / "sub" / "index.html").write_text("sub page")
    (site / "leak.txt").symlink_to(root / "secret.txt")
    (site / "leakdir").symlink_to(root)
    (site / HASHED / "up").symlink_to("../..")
    (site / "inside.txt").symlink_to("index.html")  # a link that stays inside is served
    return site


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`llama2np serve SITE --port 0 --timeout 2 --verbose` in a subprocess: (host, port, site)."""
    root = tmp_path_factory.mktemp("serve")
    site = make_site(root)
    before = folder_state(root)

    def limit() -> None:
        limit_bytes = MEMORY_LIMIT_MB << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    process = subprocess.Popen(
        [sys.executable, "-m", "llama2np.cli", "serve", site, "--port", "0",
         "--timeout", str(TIMEOUT), "--verbose"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = process.stdout.readline().decode()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert match, line
    yield "127.0.0.1", int(match.group(1)), site
    peak_mb = peak_rss_mb(process.pid)
    process.terminate()
    _, log = process.communicate(timeout=30)
    assert b"Traceback" not in log, log.decode(errors="replace")[-3000:]
    assert peak_mb < 200, peak_mb
    assert folder_state(root) == before


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def exchange(server, request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes on a new connection and read the answer until the server closes it."""
    host, port, _ = server
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def get(server, path: str | bytes, headers: str = "") -> tuple[int, bytes, bytes]:
    """(status, head, body) of `GET path` on its own connection."""
    raw = path if isinstance(path, bytes) else path.encode("latin-1")
    answer = exchange(server, b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\n" + headers.encode()
                      + b"Connection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    assert match, answer[:300]
    return int(match.group(1)), head, body


def header(head: bytes, name: str) -> str | None:
    match = re.search(rb"\r\n" + name.encode() + rb": ([^\r]*)", head, re.IGNORECASE)
    return match.group(1).decode() if match else None


def assert_still_serving(server) -> None:
    status, _, body = get(server, "/")
    assert status == 200 and b"<title>page</title>" in body


@pytest.mark.parametrize("path", ["/leak.txt", "/leakdir/secret.txt", f"/{HASHED}/up/secret.txt",
                                  "/leakdir/", "/../secret.txt", "/%2e%2e/secret.txt",
                                  "/%2E%2E%2Fsecret.txt", "/..%5csecret.txt",
                                  "/leak.txt%00.html", "//leakdir/secret.txt"])
def test_nothing_outside_the_site_is_served(server, path):
    status, head, body = get(server, path)
    assert status in (400, 404), (path, status)
    assert SECRET not in head + body
    assert_still_serving(server)


def test_a_link_that_stays_inside_is_served(server):
    status, _, body = get(server, "/inside.txt")
    assert status == 200 and b"<title>page</title>" in body


@pytest.mark.parametrize("path, statuses", [
    ("/" + "a" * 10_000, {414}),
    ("/%", {404}), ("/%zz%", {404}), ("/%ff%fe", {400}), ("/%c3%28", {400}), ("/%00", {400}),
    ("/a\\..\\..\\secret.txt", {404}), ("\\..\\secret.txt", {400}), ("*", {400}),
    ("http://evil.example/index.html", {200}), ("/%C3%A9t%C3%A9", {404}),
    ("/" + "%2e%2e/" * 200 + "secret.txt", {404}), ("/" + "%2e%2e/" * 500 + "secret.txt", {414}), ("/index.html?x=%zz", {200}),
])
def test_any_path_gets_a_status_code(server, path, statuses):
    status, head, body = get(server, path)
    assert status in statuses, (path[:80], status)
    assert SECRET not in body
    assert_still_serving(server)


def test_raw_non_ascii_bytes_in_the_request_line_get_a_status_code(server):
    assert get(server, "/\u00e9t\u00e9".encode())[0] == 404  # UTF-8: a name that is not there
    assert get(server, b"/\xff\xfe\x80")[0] == 400  # no text at all
    assert_still_serving(server)


@pytest.mark.parametrize("request_line", [b"GET /", b"GET", b"GET \x00", b"\x16\x03\x01"])
def test_http_0_9_and_broken_request_lines_get_a_status_line(server, request_line):
    answer = exchange(server, request_line + b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:100]


def test_empty_lines_before_a_request_are_skipped_and_a_blank_one_is_answered(server):
    """RFC 9112 asks a server to ignore empty lines before a request line; a line of blanks,
    or nothing but empty lines, is a request gone wrong and gets its 400."""
    answer = exchange(server, b"\r\n\r\nGET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
    for request in (b"\t\r\n\r\n", b"\r\n" * 8):
        answer = exchange(server, request)
        assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:100]


def test_ctrl_c_stops_the_server_as_it_ends_every_command(tmp_path):
    site = make_site(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "llama2np.cli", "serve", site, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert b"Serving the demo at" in process.stdout.readline()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and stderr == b"llama2np: interrupted.\n", stderr


def test_folder_without_its_slash_is_redirected_with_its_query(server):
    status, head, _ = get(server, "/sub?x=1")
    assert status == 301 and header(head, "Location") == "/sub/?x=1"
    status, head, _ = get(server, "//sub")  # never a protocol-relative address to another host
    assert status == 301 and header(head, "Location") == "/sub/"
    status, _, body = get(server, "/sub/")
    assert status == 200 and body == b"sub page"


def test_folders_are_never_listed(server):
    status, _, body = get(server, f"/{HASHED}/")
    assert status == 404 and b"app.js" not in body


def test_cache_headers_match_what_is_served(server):
    assert header(get(server, f"/{HASHED}/app.js")[1], "Cache-Control") == \
        "public, max-age=31536000, immutable"
    assert header(get(server, "/index.html")[1], "Cache-Control") == "no-cache"
    missing = get(server, f"/{HASHED}/missing.js")
    assert missing[0] == 404 and header(missing[1], "Cache-Control") == "no-store"
    assert header(get(server, "/sub")[1], "Cache-Control") == "no-cache"


def test_an_idle_connection_is_closed_within_the_timeout(server):
    host, port, _ = server
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=30) as connection:
        assert connection.recv(1) == b""  # the server closed it without an answer
    assert time.monotonic() - start < 30  # a generous bound on a hang, not a timing claim
    assert_still_serving(server)


def test_a_slow_request_head_is_cut_off(server):
    """One byte at a time, each inside the timeout: the request's deadline still ends it."""
    host, port, _ = server
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=30) as connection:
        try:
            for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
                connection.sendall(bytes([byte]))
                time.sleep(TIMEOUT / 4)
                if time.monotonic() - start > 30:
                    pytest.fail("the server kept a slow client's connection open")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the server, as it should be
    assert_still_serving(server)


def test_idle_connections_make_room_for_a_new_client(tmp_path):
    """With every connection slot held by an idle client, a new client is answered at once: the
    connection that has waited longest for a request is closed for it. The server's timeout is
    longer than the client's wait, so only the room made for it can explain the answer."""
    site = make_site(tmp_path)
    server, _ = start_server(site, timeout=60, max_connections=4)
    address = ("127.0.0.1", server.server_address[1])
    try:
        idle = [socket.create_connection(address, timeout=30) for _ in range(4)]
        time.sleep(0.2)  # all four admitted before the newcomer
        for _ in range(3):  # a stream of newcomers keeps getting in
            assert_still_serving((*address, site))
        assert idle[0].recv(1) == b""  # the longest-waiting one was closed
        for connection in idle:
            connection.close()
    finally:
        server.shutdown()
        server.server_close()


def wait_for_a_connection(server) -> None:
    """Until the server has taken the client's connection in."""
    deadline = time.monotonic() + 30
    while not server.connections:
        assert time.monotonic() < deadline, "the server never took the connection"
        time.sleep(0.01)


def test_a_client_that_reads_slowly_is_cut_off(tmp_path):
    """A client that reads a little at a time, always inside the timeout, still has to take the
    answer at the server's minimum pace: its connection is dropped long before the body is
    through. (The file is larger than the kernel's buffers, which would otherwise hold it.)"""
    site = make_site(tmp_path)
    with open(site / "big.bin", "wb") as big:
        big.truncate(64 << 20)
    server, _ = start_server(site, timeout=TIMEOUT, min_rate=8 << 20)  # deadline: 2 s + 8 s
    address = ("127.0.0.1", server.server_address[1])
    received, start = 0, time.monotonic()
    try:
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.settimeout(30)
            client.connect(address)
            client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for_a_connection(server)
            while server.connections:  # about 40 KB a second, until the server lets go
                received += len(client.recv(4096))
                time.sleep(0.1)
                assert time.monotonic() - start < 60, "the slow reader held its thread"
        assert received < 8 << 20
        assert_still_serving((*address, site))
    finally:
        server.shutdown()
        server.server_close()


def test_fast_answers_bank_no_time_for_a_slow_one_later(tmp_path):
    """Three answers read at full speed, then one read slowly on the same connection: the slow
    one still gets only its own bytes' time (8 s here) plus the timeout (5 s), not the fast
    ones' (24 s more)."""
    site = make_site(tmp_path)
    with open(site / "big.bin", "wb") as big:
        big.truncate(64 << 20)
    server, _ = start_server(site, timeout=5, min_rate=8 << 20)
    address = ("127.0.0.1", server.server_address[1])
    request = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        with socket.create_connection(address, timeout=30) as client:
            for _ in range(3):
                client.sendall(request)
                received = 0
                while received < 64 << 20:  # the head's bytes are counted too: close enough
                    received += len(client.recv(1 << 20))
            client.sendall(request)
            start = time.monotonic()
            while server.connections:  # about 128 KB a second: each write well within the timeout
                client.recv(65536)
                time.sleep(0.5)
                assert time.monotonic() - start < 25, "the slow answer lived on banked time"
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_that_pipelines_small_answers_and_reads_slowly_is_cut_off(tmp_path):
    """Many small answers asked for at once and read slowly: each would finish within its own
    deadline, but the connection's sending time as a whole outruns its bytes at the minimum
    pace, so the server lets go of it."""
    site = make_site(tmp_path)
    (site / "small.bin").write_bytes(os.urandom(10_000))
    server, _ = start_server(site, timeout=TIMEOUT, min_rate=8 << 20)
    address = ("127.0.0.1", server.server_address[1])
    start = time.monotonic()
    try:
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.settimeout(30)
            client.connect(address)
            client.sendall(b"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 3000)
            wait_for_a_connection(server)
            while server.connections:  # about 40 KB a second, until the server lets go
                client.recv(4096)
                time.sleep(0.1)
                assert time.monotonic() - start < 60, "the pipelining slow reader held its thread"
        assert_still_serving((*address, site))
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_head_beyond_its_bound_gets_431_and_the_connection_closes(server):
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (n, b"a" * 9000) for n in range(8))
    answer = exchange(server, head + b"\r\n")
    assert re.match(rb"HTTP/1\.[01] 431 ", answer), answer[:100]
    assert_still_serving(server)


def test_an_interrupt_while_a_connection_starts_leaves_the_count_right(tmp_path, monkeypatch):
    """Ctrl+C can land while the server starts a connection's thread, after the thread has
    already served and left; the interrupt must still stop the server, and the slot be free."""
    site = make_site(tmp_path)
    server, _ = make_server(site, max_connections=1)
    real_start = threading.Thread.start

    def start_then_interrupt(thread: threading.Thread) -> None:
        real_start(thread)
        thread.join()
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    try:
        for _ in range(2):
            client, accepted = socket.socketpair()
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            with pytest.raises(KeyboardInterrupt):
                server.process_request(accepted, ("127.0.0.1", 1))
            assert client.recv(12) == b"HTTP/1.1 200"
            client.close()
        assert server.connections == {}
    finally:
        server.server_close()
