"""A built site served on this machine (`llama2np serve`), with the headers a static host should send.

Loopback only unless told otherwise. Content-hashed folders are cached for good, the page is
revalidated on every visit, precompressed siblings are sent to browsers that accept them, and
every response carries the page's Content-Security-Policy (a worker takes its policy from its
own response headers, not from the page's <meta> tag).
"""

import errno
import re
import sys
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from llama2np.errors import Llama2npError, UsageError

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
HASHED_FOLDER = re.compile(r"^/[a-z]+-[0-9a-f]{10}/")
MEDIA_TYPES = {
    ".wasm": "application/wasm",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".css": "text/css",
    ".html": "text/html; charset=utf-8",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".bin": "application/octet-stream",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))  # preferred first


def serve(directory: Path, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False) -> None:
    """Serve `directory` until Ctrl+C, after printing the address to open."""
    server, url = make_server(directory, host, port, verbose)
    print(f"Serving the demo at {url} (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def make_server(directory: Path, host: str = "127.0.0.1", port: int = 0,
                verbose: bool = False) -> tuple[ThreadingHTTPServer, str]:
    """An HTTP server for `directory` (not yet serving) and the address to open."""
    directory = Path(directory)
    if not (directory / "index.html").is_file():
        raise Llama2npError(f"{directory} holds no built site; run `llama2np build` first.")
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is not between 0 and 65535.")
    handler = partial(SiteHandler, directory=str(directory.resolve()), verbose=verbose)
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise Llama2npError(f"port {port} is in use; pick another with --port.") from None
        raise Llama2npError(f"cannot listen on {host}:{port}: {error.strerror}.") from None
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return server, f"http://{shown}:{bound_port}/"


def start_server(directory: Path, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve `directory` on a background thread; `server.shutdown()` stops it. For tests and
    the browser benchmark."""
    server, url = make_server(directory, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, url


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files with caching, precompression and security headers; no directory listings."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MEDIA_TYPES}
    protocol_version = "HTTP/1.1"  # keep-alive: the page makes a dozen requests at once
    server_version = "llama2np"
    sys_version = ""

    def __init__(self, *args: object, verbose: bool = False, **kwargs: object) -> None:
        self.verbose = verbose
        super().__init__(*args, **kwargs)

    def send_head(self) -> object:
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file() or path.suffix in (".br", ".gz") or path.name.startswith("."):
            self.send_error(HTTPStatus.NOT_FOUND, "Not found")
            return None
        encoding, body_path = self.choose_encoding(path)
        try:
            body = body_path.open("rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "Not found")
            return None
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Length", str(body_path.stat().st_size))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Vary", "Accept-Encoding")
        url_path = self.path.split("?", 1)[0]
        self.send_header("Cache-Control", IMMUTABLE if HASHED_FOLDER.match(url_path) else "no-cache")
        self.end_headers()
        return body

    def choose_encoding(self, path: Path) -> tuple[str | None, Path]:
        accepted = {part.split(";")[0].strip() for part in self.headers.get("Accept-Encoding", "").split(",")}
        for name, suffix in ENCODINGS:
            variant = path.with_name(path.name + suffix)
            if name in accepted and variant.is_file():
                return name, variant
        return None, path

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def list_directory(self, path: str) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "Not found")
        return None

    def log_message(self, format: str, *args: object) -> None:
        if self.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")
