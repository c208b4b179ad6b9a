"""`llama2np serve`: the headers a static host should send, and nothing outside the site."""

import gzip
import http.client
import urllib.parse

import brotli
import pytest
from llama2np.tools.site.serve import CONTENT_SECURITY_POLICY, start_server
from support import run_cli


@pytest.fixture(scope="module")
def server(built_site):
    server, url = start_server(built_site)
    yield built_site, url
    server.shutdown()


def get(url: str, path: str, encoding: str | None = None) -> http.client.HTTPResponse:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", path, headers={"Accept-Encoding": encoding} if encoding else {})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def hashed(site, prefix: str) -> str:
    return next(p.name for p in site.iterdir() if p.name.startswith(prefix + "-"))


def test_binds_to_loopback(built_site):
    server, url = start_server(built_site)
    try:
        assert server.server_address[0] == "127.0.0.1" and url.startswith("http://127.0.0.1:")
    finally:
        server.shutdown()


def test_page_is_revalidated_and_carries_the_policy(server):
    site, url = server
    response = get(url, "/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.getheader("Cache-Control") == "no-cache"
    assert response.getheader("Content-Security-Policy") == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "'unsafe-eval'" not in CONTENT_SECURITY_POLICY
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.body == (site / "index.html").read_bytes()


def test_webassembly_is_immutable_and_compressed_when_asked(server):
    site, url = server
    path = f"/{hashed(site, 'pyodide')}/pyodide.asm.wasm"
    original = (site / path.lstrip("/")).read_bytes()
    plain = get(url, path)
    assert plain.getheader("Content-Type") == "application/wasm"
    assert plain.getheader("Cache-Control") == "public, max-age=31536000, immutable"
    assert plain.getheader("Content-Encoding") is None and plain.body == original
    br = get(url, path, "gzip, deflate, br")
    assert br.getheader("Content-Encoding") == "br" and br.getheader("Vary") == "Accept-Encoding"
    assert brotli.decompress(br.body) == original and len(br.body) < len(original) / 2
    gz = get(url, path, "gzip")
    assert gz.getheader("Content-Encoding") == "gzip" and gzip.decompress(gz.body) == original


def test_javascript_modules_have_a_javascript_type(server):
    site, url = server
    for path in (f"/{hashed(site, 'pyodide')}/pyodide.js", f"/{hashed(site, 'web')}/worker.js"):
        assert get(url, path).getheader("Content-Type") == "text/javascript"


SECRET = b"a file beside the site, never to be served"


@pytest.mark.parametrize("path", ["/nothing-here", "/../secret.txt", "/%2e%2e/secret.txt",
                                  "/.llama2np-site", "/index.html.br", "/web-0000000000/"])
def test_missing_hidden_and_outside_files_are_not_served(server, path):
    site, url = server
    (site.parent / "secret.txt").write_bytes(SECRET)  # beside the site: reachable by `..` only
    response = get(url, path)
    assert response.status == 404 and SECRET not in response.body


def test_directories_are_not_listed(server):
    site, url = server
    response = get(url, f"/{hashed(site, 'model')}/")
    assert response.status == 404


def test_missing_site_and_bad_port_are_sentences(tmp_path):
    result = run_cli("serve", tmp_path / "nowhere")
    assert result.returncode == 1 and "run `llama2np build` first" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("serve", tmp_path / "nowhere", "--port", "70000")
    assert result.returncode == 2 and "70000" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_busy_port_is_a_sentence(server):
    port = urllib.parse.urlsplit(server[1]).port
    result = run_cli("serve", server[0], "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} is in use; pick another with --port." in result.stderr


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "1e9"])
def test_bad_timeout_is_a_sentence(built_site, timeout):
    result = run_cli("serve", built_site, "--timeout", timeout)
    assert result.returncode == 2 and "--timeout" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_default_timeout_is_the_server_s():
    from llama2np.commands import serve as command
    from llama2np.tools.site import serve

    assert command.TIMEOUT_SECONDS == serve.TIMEOUT_SECONDS
    assert 5 <= serve.TIMEOUT_SECONDS <= 60  # idle clients let go, slow networks still served


def test_folder_without_slash_is_redirected(server):
    site, url = server
    folder = hashed(site, "web")
    response = get(url, f"/{folder}?v=1")
    assert response.status == 301 and response.getheader("Location") == f"/{folder}/?v=1"
