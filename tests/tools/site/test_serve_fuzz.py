"""Fuzzing `llama2np serve`'s path handling with Hypothesis: whatever the request target, the
answer is a well-formed HTTP response with a status code, never the bytes of the secret file
that sits beside the site, and the server goes on serving.

HYPOTHESIS_PROFILE=thorough runs ten times as many cases as the normal run.
"""

import http.client
import re
import socket
import urllib.parse

import pytest
from fuzzing import cases
from hypothesis import example, given
from hypothesis import strategies as st
from llama2np.tools.site.serve import start_server

PROFILE = cases(400)

SECRET = b"the secret beside the site 5b2e91"
HASHED = "web-0123456789"
STATUS_LINE = re.compile(rb"HTTP/1\.[01] [1-5]\d\d ")

# Pieces a path traversal would be made of, and the names that exist in the test site.
PIECES = ["..", ".", "%2e%2e", "%2E%2e", "%2f", "%5c", "\\", "%00", "%", "%zz", "%ff", "%c3%28",
          "/", "//", "?", "#", ";", "secret.txt", "leak.txt", "leakdir", "sub", HASHED,
          "app.js", "index.html", "index.html.br", ".hidden", "~", "%252e", "http://x/", "é"]

PAGE = b"<!doctype html><title>fuzz</title>"
SITE_FILES = {"index.html": PAGE, f"{HASHED}/app.js": b"export {}",
              "index.html.br": b"not really brotli", ".hidden": b"hidden"}
SITE_LINKS = {"leak.txt": "../secret.txt", "leakdir": "..", f"{HASHED}/up": "../.."}


@pytest.fixture(scope="module")
def site_server(tmp_path_factory):
    """A served temporary site holding links that point at the secret file beside it."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "secret.txt").write_bytes(SECRET)
    site = root / "site"
    for name, data in SITE_FILES.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
    for name, target in SITE_LINKS.items():
        (site / name).symlink_to(target)
    (site / "sub").mkdir()
    server, _ = start_server(site, timeout=5)
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


def exchange(address, request: bytes) -> bytes:
    """Send `request`, say nothing more, and read everything until the server closes."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)  # no more requests: the server closes after answering
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def assert_still_serving(address) -> None:
    answer = exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"<title>fuzz</title>" in answer


raw_targets = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=5)
    .map(lambda parts: ("/" + "/".join(parts)).encode()),
    st.lists(st.sampled_from([p.encode() for p in PIECES]) | st.binary(max_size=4), max_size=10)
    .map(lambda parts: b"/" + b"".join(parts)),
)


@PROFILE
@given(target=raw_targets)
@example(target=b"/leak.txt")  # the known ways out, tried on every run
@example(target=b"/leakdir/secret.txt")
@example(target=f"/{HASHED}/up/secret.txt".encode())
def test_any_raw_request_target_gets_a_status_and_no_secret(site_server, target):
    answer = exchange(site_server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert STATUS_LINE.match(answer), answer[:200]
    assert SECRET not in answer
    assert_still_serving(site_server)


http_paths = st.one_of(
    st.text(max_size=100).map(lambda text: "/" + urllib.parse.quote(text, safe="/%?#;\\.~")),
    st.lists(st.sampled_from(PIECES), max_size=12)
    .map(lambda parts: "/" + urllib.parse.quote("/".join(parts), safe="/%?#;\\.~:")),
)


@PROFILE
@given(path=http_paths, method=st.sampled_from(["GET", "HEAD"]))
def test_any_http_client_path_gets_a_status_and_no_secret(site_server, path, method):
    connection = http.client.HTTPConnection(*site_server, timeout=10)
    try:
        connection.request(method, path, headers={"Accept-Encoding": "gzip, br"})
        response = connection.getresponse()
        body = response.read()
        assert 100 <= response.status <= 599
        assert SECRET not in body
        if response.status == 200:  # only files of the site, and never its hidden ones
            assert body in (PAGE, b"export {}", b"not really brotli", b"")  # .br: the page's
    finally:
        connection.close()
    assert_still_serving(site_server)
