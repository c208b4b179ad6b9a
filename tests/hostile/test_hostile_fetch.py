"""`llama2np fetch` against hostile manifests and servers: nothing written outside the model
folder, nothing of the user's lost, every refusal one sentence, in bounded time and memory.

Downloads come from an `http.server` on 127.0.0.1 started by the test; nothing leaves the machine.
"""

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler

import pytest
from hostile import assert_refused, folder_state, run_bounded
from support import QuietServer

pytestmark = pytest.mark.hostile

MODEL = b"model bytes " * 100
SHA = hashlib.sha256(MODEL).hexdigest()
GOOD = {"url": "http://127.0.0.1:9/a.bin", "size": len(MODEL), "sha256": SHA}


class Source(BaseHTTPRequestHandler):
    """Answers every GET with `body`, announcing `length` as its Content-Length."""

    body = MODEL
    length: int | None = None

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(self.length if self.length is not None
                                               else len(self.body)))
        self.end_headers()
        try:
            self.wfile.write(self.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # fetch hung up once it had seen too much, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def source():
    """Start a loopback server sending `body` (with `length` announced); yields its base URL."""
    servers = []

    def start(body: bytes, length: int | None = None) -> str:
        handler = type("Handler", (Source,), {"body": body, "length": length})
        server = QuietServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def setup(tmp_path, manifest: object, extra: dict[str, bytes] | None = None):
    """tmp_path/outside/model/manifest.json (+ extra files); returns the model folder and the
    state of the folder above it, which must not change unless the test says so."""
    model = tmp_path / "outside" / "model"
    model.mkdir(parents=True)
    (tmp_path / "outside" / "bystander.txt").write_bytes(b"a user's file")
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (model / "manifest.json").write_text(text)
    for name, data in (extra or {}).items():
        (model / name).write_bytes(data)
    return model, folder_state(tmp_path)


def fetch(model, mirror=None, **kwargs):
    env = {"LLAMA2NP_MODEL_MIRROR": str(mirror)} if mirror else {"LLAMA2NP_MODEL_MIRROR": ""}
    return run_bounded("fetch", model, env=env, timeout=60, **kwargs)


def refused(tmp_path, model, before, *phrases, mirror=None) -> None:
    outcome = fetch(model, mirror)
    assert_refused(outcome, 1, *phrases)
    assert folder_state(tmp_path) == before  # the folder, its parent and the mirror untouched
    assert outcome.peak_rss_mb < 200, outcome.peak_rss_mb


@pytest.mark.parametrize("name", ["../../x", "../bystander.txt", "/tmp/x", "sub/x", "a\\..\\x",
                                  ".hidden", "..", ".", "", "a\0b", "x" * 300, "line\nbreak",
                                  "manifest.json"])
def test_names_that_leave_the_folder_are_refused(tmp_path, name):
    model, before = setup(tmp_path, {"files": {name: GOOD}})
    refused(tmp_path, model, before, "manifest.json", "entry")


def entry(**changes: object) -> dict:
    """A manifest with one entry, "a.bin", changed as given (None removes a field)."""
    fields = {**GOOD, **changes}
    return {"files": {"a.bin": {k: v for k, v in fields.items() if v is not None}}}


@pytest.mark.parametrize("manifest, phrase", [
    ("[]", "not a JSON object"),
    ('{"files": []}', '"files"'),
    ("{}", '"files"'),
    ('{"files": {"a.bin": "x"}}', "not an object"),
    (entry(size="12"), "size"), (entry(size=-1), "size"), (entry(size=True), "size"),
    (entry(size=1e30), "size"), (entry(size=10**30), "size"),
    (entry(sha256="abc"), "sha256"), (entry(sha256=SHA.upper()), "sha256"),
    ('{"files": {"a.bin": {"url": "http://h/a", "size": 1, "sha256": null}}}', "sha256"),
    (entry(url="file:///etc/passwd"), "url"), (entry(url="ftp://h/a"), "url"),
    (entry(url=7), "url"), (entry(url=None), "url"), (entry(url="http:///nohost"), "url"),
    ('{"files": {}, "golden": []}', '"golden"'),
    ({"files": {}, "golden": {"../g.txt": {"size": 1, "sha256": SHA}}}, "golden entry"),
    ("[" * 100_000, "not valid JSON"),
    ('{"files": {', "not valid JSON"),
    ("\xff\xfe", "not valid JSON"),
    ('{"files": {}, "n": ' + "1" * 5000 + "}", "not valid JSON"),  # past Python's int limit
    (entry(url="http://[::1/a"), "url"),  # an IPv6 host never closed
    (entry(url="http://127.0.0.1:1/a\r\nX: y"), "url"),  # would print a line of its own
    (entry(url="http://h/a b"), "url"), (entry(url="http://h/\x1b[2J"), "url"),
])
def test_malformed_manifests_are_one_sentence(tmp_path, manifest, phrase):
    model, before = setup(tmp_path, manifest)
    refused(tmp_path, model, before, "manifest.json", phrase)


def test_a_manifest_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    os.mkfifo(model / "manifest.json")
    before = folder_state(tmp_path)
    refused(tmp_path, model, before, "manifest.json", "not a regular file")


def test_a_huge_manifest_is_refused_unread(tmp_path):
    model, before = setup(tmp_path, '{"files": {}}' + " " * (2 << 20))
    refused(tmp_path, model, before, "manifest.json", "bytes")


def test_a_download_longer_than_the_manifest_says_is_stopped(tmp_path, source):
    url = source(MODEL + b"x" * (4 << 20))  # 4 MB more than announced in the manifest
    model, before = setup(tmp_path, {"files": {"a.bin": {**GOOD, "url": url + "a.bin"}}})
    refused(tmp_path, model, before, "more than the manifest's 1,200 bytes")


def test_a_header_claiming_a_huge_length_allocates_nothing(tmp_path, source):
    url = source(MODEL[:10], length=10**15)  # then the connection ends
    model, before = setup(tmp_path, {"files": {"a.bin": {**GOOD, "url": url + "a.bin"}}})
    refused(tmp_path, model, before, "a.bin")


def test_a_users_part_file_is_kept(tmp_path, source):
    url = source(MODEL)
    model, _ = setup(tmp_path, {"files": {"a.bin": {**GOOD, "url": url + "a.bin"}}},
                     extra={"a.bin.part": b"a user's own file", "a.bin.partial": b"another"})
    outcome = fetch(model)
    assert outcome.status == 0, outcome.stderr
    assert (model / "a.bin").read_bytes() == MODEL
    assert (model / "a.bin.part").read_bytes() == b"a user's own file"
    assert (model / "a.bin.partial").read_bytes() == b"another"
    assert sorted(p.name for p in model.iterdir()) == \
        ["a.bin", "a.bin.part", "a.bin.partial", "manifest.json"]


def test_a_wrong_download_leaves_the_folder_as_it_was(tmp_path, source):
    url = source(b"y" * len(MODEL))
    model, before = setup(tmp_path, {"files": {"a.bin": {**GOOD, "url": url + "a.bin"}}},
                          extra={"a.bin.part": b"a user's own file"})
    refused(tmp_path, model, before, "a.bin", "not the manifest's")


def test_a_mirror_fifo_is_refused_without_blocking(tmp_path):
    model, _ = setup(tmp_path, {"files": {"a.bin": GOOD}})
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    os.mkfifo(mirror / "a.bin")
    before = folder_state(tmp_path)
    refused(tmp_path, model, before, "a.bin", "not a regular file", mirror=mirror)


def test_a_mirror_file_longer_than_the_manifest_says_is_not_copied(tmp_path):
    model, _ = setup(tmp_path, {"files": {"a.bin": GOOD}})
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.bin").write_bytes(MODEL * 1000)
    before = folder_state(tmp_path)
    refused(tmp_path, model, before, "more than the manifest's", mirror=mirror)


def test_a_folder_in_the_way_is_refused(tmp_path):
    model, _ = setup(tmp_path, {"files": {"a.bin": GOOD}})
    (model / "a.bin").mkdir()
    (model / "a.bin" / "inside.txt").write_bytes(b"kept")
    before = folder_state(tmp_path)
    refused(tmp_path, model, before, "a.bin", "move it away")


def test_a_redirect_away_from_http_is_refused(tmp_path):
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1:9/a.bin")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = QuietServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/a.bin"
        model, before = setup(tmp_path, {"files": {"a.bin": {**GOOD, "url": url}}})
        refused(tmp_path, model, before, "could not download", "not http(s)")
    finally:
        server.shutdown()
        server.server_close()
