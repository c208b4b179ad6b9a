"""A built site served on this machine (`llama2np serve`), with the headers a static host should send.

Loopback only unless told otherwise. Content-hashed folders are cached for good, the page is
revalidated on every visit, precompressed siblings are sent to browsers that accept them, and
every response carries the page's Content-Security-Policy (a worker takes its policy from its
own response headers, not from the page's <meta> tag).

Whatever a client sends, it gets a status code and nothing from outside the site: paths are
decoded strictly, `..` and hidden names are never looked up, links are resolved and must stay in
the site's folder, and a folder is answered with a redirect to its slash form or its index.html,
never a listing. A request must arrive within the timeout and an answer be read at a
minimum pace, and only so many connections are served at once; when all are taken, the one that
has waited longest for a request makes room. So idle or slow clients cannot hold the server.
"""

import errno
import io
import os
import re
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from llama2np.console import printable
from llama2np.runtime.errors import Llama2npError, UsageError

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
HASHED_FOLDER = re.compile(r"[a-z]+-[0-9a-f]{10}")  # a folder named by its content's hash
TIMEOUT_SECONDS = 20.0  # for a request to arrive (idle keep-alive included) and for every write
MAX_CONNECTIONS = 64  # a browser opens about six per site
MIN_RATE = 16384  # bytes a second a connection's answers must keep up (about a 2G link's pace)
MAX_HEAD_BYTES = 65536  # of a request line and its headers together; a browser's are about 1 KB
SEND_CHUNK = 65536
MAX_PATH_LENGTH = 2048  # the site's longest address is under 200 characters
LEADING_EMPTY_LINES = 4  # before a request line, skipped as the HTTP standard asks
REQUEST_LINE_LIMIT = 65536  # what http.server reads of a request line
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


def serve(directory: Path, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False,
          timeout: float = TIMEOUT_SECONDS) -> None:
    """Serve `directory` until Ctrl+C (which ends the command as it ends every other one, with
    status 130), after printing the address to open."""
    server, url = make_server(directory, host, port, verbose, timeout)
    print(f"Serving the demo at {url} (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def make_server(directory: Path, host: str = "127.0.0.1", port: int = 0, verbose: bool = False,
                timeout: float = TIMEOUT_SECONDS, max_connections: int = MAX_CONNECTIONS,
                min_rate: float = MIN_RATE) -> tuple["SiteServer", str]:
    """An HTTP server for `directory` (not yet serving) and the address to open."""
    directory = Path(directory)
    if not (directory / "index.html").is_file():
        raise Llama2npError(f"{directory} holds no built site; run `llama2np build` first.")
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is not between 0 and 65535.")
    handler = partial(SiteHandler, directory=os.path.realpath(directory), verbose=verbose,
                      timeout=timeout, min_rate=min_rate)
    try:
        server = SiteServer((host, port), handler, max_connections, verbose)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise Llama2npError(f"port {port} is in use; pick another with --port.") from None
        raise Llama2npError(f"cannot listen on {host}:{port}: {error.strerror}.") from None
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return server, f"http://{shown}:{bound_port}/"


def start_server(directory: Path, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = TIMEOUT_SECONDS, max_connections: int = MAX_CONNECTIONS,
                 min_rate: float = MIN_RATE) -> tuple["SiteServer", str]:
    """Serve `directory` on a background thread; `server.shutdown()` stops it. For tests and
    the browser benchmark."""
    server, url = make_server(directory, host, port, timeout=timeout,
                              max_connections=max_connections, min_rate=min_rate)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, url


class SiteServer(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` at once. When every one is taken, a
    new connection takes the place of the one that has waited longest for a request (idle
    keep-alive or a slow request head), so idle clients cannot lock others out; if every
    connection is being answered, the new one is closed."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: object,
                 max_connections: int = MAX_CONNECTIONS, verbose: bool = False) -> None:
        self.max_connections = max_connections
        self.verbose = verbose
        self.lock = threading.Lock()
        # connection -> when it began waiting for a request, or None while it is answered
        self.connections: dict[socket.socket, float | None] = {}
        self.closing = False  # once set, a worker's failure is the shutdown's, not worth a line
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:
        if not self.admit(request):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.closing = True  # an interrupt: the server stops, and the request is closed
            self.forget(request)  # no thread may have started to forget it (a no-op if one did)
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.forget(request)

    def admit(self, request: socket.socket) -> bool:
        """Count `request` in, closing the longest-waiting connection if all are taken; False if
        every connection is being answered."""
        with self.lock:
            if len(self.connections) >= self.max_connections:
                waiting = [(since, sock) for sock, since in self.connections.items() if since is not None]
                if not waiting:
                    return False
                _, oldest = min(waiting, key=lambda item: item[0])
                del self.connections[oldest]
                try:
                    oldest.shutdown(socket.SHUT_RDWR)  # its thread sees the end of the stream
                except OSError:
                    pass
            self.connections[request] = time.monotonic()
            return True

    def mark(self, request: socket.socket, waiting: bool) -> bool:
        """Record whether `request` waits for a request or is being answered; False if it was
        closed to make room for another."""
        with self.lock:
            if request not in self.connections:
                return False
            if not waiting:
                self.connections[request] = None
            elif self.connections[request] is None:  # waiting again, after an answer
                self.connections[request] = time.monotonic()
            return True

    def forget(self, request: socket.socket) -> None:
        with self.lock:
            self.connections.pop(request, None)

    def server_close(self) -> None:
        self.closing = True
        super().server_close()

    def handle_error(self, request: socket.socket, client_address: object) -> None:
        """One line instead of socketserver's traceback: a client that vanished is routine (said
        only when verbose), and so is a request cut by the server stopping; anything else is a
        fault of the server worth a line."""
        error = sys.exception()
        if self.closing or isinstance(error, (ConnectionError, TimeoutError)) and not self.verbose:
            return
        if os.environ.get("LLAMA2NP_DEBUG"):
            traceback.print_exc()
        else:
            sys.stderr.write(f"llama2np: answering {client_address[0]} failed ({printable(repr(error)[:200])}); "
                             "set LLAMA2NP_DEBUG=1 to see the traceback.\n")


def accepted_encodings(header: str) -> set[str]:
    """The codings an Accept-Encoding header accepts (RFC 9110, 12.5.3): each listed one whose
    weight is not zero ("gzip;q=0" refuses gzip), and any coding it does not name when it
    accepts "*". Names are case-insensitive; a weight that is not a number counts as 1."""
    weights = {}
    for part in header.split(","):
        name, *parameters = [item.strip() for item in part.split(";")]
        weight = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 1.0
        if name:
            weights[name.lower()] = weight
    accepted = {name for name, weight in weights.items() if weight > 0}
    if "*" in accepted:
        accepted |= {name for name, _ in ENCODINGS if name not in weights}
    return accepted


class RequestHeadReader(io.RawIOBase):
    """The socket as seen while a request arrives: every read waits only until the request's
    deadline, so a client sending its head one byte at a time cannot hold a thread for longer
    than an idle one."""

    def __init__(self, handler: "SiteHandler") -> None:
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        remaining = self.handler.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        connection = self.handler.connection
        connection.settimeout(remaining)
        try:
            received = connection.recv_into(buffer)
        finally:
            connection.settimeout(self.handler.timeout)  # writes get the whole timeout again
        self.handler.head_bytes += received
        if self.handler.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge
        return received


class HeadTooLarge(Exception):
    """A request line and headers beyond MAX_HEAD_BYTES: answered with 431, then closed."""


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files with caching, precompression and security headers; no directory listings,
    nothing outside the site's folder, and a status code for every request."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MEDIA_TYPES}
    protocol_version = "HTTP/1.1"  # keep-alive: the page makes a dozen requests at once
    server_version = "llama2np"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # errors before the version is read get a status line

    def __init__(self, *args: object, verbose: bool = False, timeout: float = TIMEOUT_SECONDS,
                 min_rate: float = MIN_RATE, **kwargs: object) -> None:
        self.verbose = verbose
        self.timeout = timeout  # StreamRequestHandler sets it on the socket in setup()
        self.min_rate = min_rate
        self.head_bytes = 0  # read from the client since its request began
        # How far this connection's answers have fallen behind `min_rate` (seconds, never below
        # zero: time saved on fast answers is not banked), and the answer being sent.
        self.overrun = 0.0
        self.answer_started, self.answer_deadline, self.answer_bytes = None, 0.0, 0
        self.deadline = time.monotonic() + timeout
        self.cache_control = "no-store"
        super().__init__(*args, **kwargs)

    def setup(self) -> None:
        super().setup()
        plain = self.rfile
        self.rfile = io.BufferedReader(RequestHeadReader(self))
        plain.close()  # else the socket stays open until the garbage collector finds it

    def handle_one_request(self) -> None:
        # Waiting for a request (keep-alive) and reading its head share one deadline.
        self.deadline = time.monotonic() + self.timeout
        self.head_bytes = 0
        self.cache_control = "no-store"  # until a file is found: errors are never cached
        if not self.server.mark(self.connection, waiting=True):
            self.close_connection = True  # closed to make room for another client
            return
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client left or stalled mid-answer
        except HeadTooLarge:
            self.command, self.request_version = None, self.default_request_version
            self.close_connection = True
            try:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request head too large")
            except (ConnectionError, TimeoutError):
                pass
        finally:
            if self.answer_started is not None:
                took = time.monotonic() - self.answer_started
                self.overrun = max(0.0, self.overrun + took - self.answer_bytes / self.min_rate)
                self.answer_started, self.answer_bytes = None, 0

    def start_answer(self) -> None:
        """An answer begins: it may take its bytes' time at `min_rate` (added in `copyfile`)
        plus what is left of the timeout after the connection's overrun so far. So a connection
        that pipelines many small answers and reads them slowly is cut, not just a slow answer
        alone, and fast answers bank no time for slow ones later."""
        self.answer_started = time.monotonic()
        self.answer_deadline = self.answer_started + self.timeout - self.overrun

    def allow_time(self) -> None:
        """Give the socket's next write what is left of the answer's time, or end the answer."""
        remaining = self.answer_deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the client read its answers too slowly")
        self.connection.settimeout(min(self.timeout, remaining))

    def flush_headers(self) -> None:
        if self.answer_started is not None:
            self.allow_time()
        super().flush_headers()

    def parse_request(self) -> bool:
        # Empty lines before a request are to be ignored (RFC 9112, 2.2): a few of them are.
        for _ in range(LEADING_EMPTY_LINES):
            if self.raw_requestline not in (b"\r\n", b"\n"):
                break
            self.raw_requestline = self.rfile.readline(REQUEST_LINE_LIMIT + 1)
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        blank = not self.requestline.strip()  # the base class would close without a word
        if blank or len(self.raw_requestline) > REQUEST_LINE_LIMIT:
            self.command, self.request_version = None, self.default_request_version
            self.close_connection = True
            if blank:
                self.send_error(HTTPStatus.BAD_REQUEST, "No request line")
            else:
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, "Request line too long")
            return False
        # An HTTP/0.9 request (`GET /path`, no version) would get an answer without a status
        # line; refuse it before the base class waits for headers that will never come.
        if len(self.requestline.split()) == 2:
            self.command, self.request_version = None, self.default_request_version
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not served")
            return False
        if not super().parse_request():
            return False
        # A static site takes no request bodies. One that came anyway (Content-Length or a
        # Transfer-Encoding such as chunked) is refused and the connection closed: read as the
        # next request, its bytes would be a request smuggled past a proxy (RFC 9112, 6.3).
        length = self.headers.get("Content-Length", "0").strip()
        if self.headers.get("Transfer-Encoding") is not None or length not in ("", "0"):
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, "A request to a static site has no body")
            return False
        if not self.server.mark(self.connection, waiting=False):
            self.close_connection = True  # closed to make room while its head arrived
            return False
        self.start_answer()
        return True

    def send_head(self) -> object:
        found = self.find_file()
        if found is None:
            return None
        path, segments = found
        encoding, body_path = self.choose_encoding(path)
        try:
            body = body_path.open("rb")
            size = os.fstat(body.fileno()).st_size
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "Not found")
            return None
        # Only a file inside a content-hashed folder may be cached for good: its address
        # changes whenever its content does.
        hashed = len(segments) > 1 and HASHED_FOLDER.fullmatch(segments[0]) is not None
        self.cache_control = IMMUTABLE if hashed else "no-cache"
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Length", str(size))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        return body

    def find_file(self) -> tuple[Path, list[str]] | None:
        """The regular file inside the site that the request names, with the decoded path's
        segments; or None once an error or redirect has been sent."""
        target = self.path
        if len(target) > MAX_PATH_LENGTH:
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, "Path too long")
            return None
        if target.startswith(("http://", "https://")):  # absolute form: only its path counts
            target = urllib.parse.urlsplit(target).path or "/"
        if not target.startswith("/"):
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad request target")
            return None
        url_path, _, query = target.partition("#")[0].partition("?")
        try:
            # The request line arrived as bytes read as Latin-1; undo that before decoding.
            decoded = urllib.parse.unquote_to_bytes(url_path.encode("latin-1")).decode("utf-8")
        except (UnicodeError, ValueError):
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad path encoding")
            return None
        if "\0" in decoded:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad path")
            return None
        segments = [segment for segment in decoded.split("/") if segment]
        # No `..`, no hidden files, no precompressed siblings asked for by name.
        if any(s.startswith(".") or s.endswith((".br", ".gz")) for s in segments):
            self.send_error(HTTPStatus.NOT_FOUND, "Not found")
            return None
        path = self.inside_site(Path(self.directory, *segments))
        if path is not None and path.is_dir():
            if not decoded.endswith("/"):
                location = "/" + "/".join(urllib.parse.quote(s) for s in segments) + "/"
                self.redirect(location + (f"?{query}" if query else ""))
                return None
            path = self.inside_site(path / "index.html")
        if path is None or not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "Not found")
            return None
        return path, segments

    def inside_site(self, path: Path) -> Path | None:
        """`path` with every link resolved, if that is inside the site (else None): a link in
        the site to a file elsewhere on the machine is not served."""
        try:
            real = Path(os.path.realpath(path))
            real.stat()
        except (OSError, ValueError):
            return None
        return real if real.is_relative_to(self.directory) else None

    def redirect(self, location: str) -> None:
        """A folder asked for without its slash: 301 to the slash form, so the page's relative
        addresses resolve inside the folder."""
        self.cache_control = "no-cache"
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def choose_encoding(self, path: Path) -> tuple[str | None, Path]:
        accepted = accepted_encodings(self.headers.get("Accept-Encoding", ""))
        for name, suffix in ENCODINGS:
            variant = self.inside_site(path.with_name(path.name + suffix))
            if name in accepted and variant is not None and variant.is_file():
                return name, variant
        return None, path

    def copyfile(self, source: io.BufferedReader, outputfile: io.RawIOBase) -> None:
        """Send the body a piece at a time, each within the answer's time (see start_answer)."""
        size = os.fstat(source.fileno()).st_size
        self.answer_deadline += size / self.min_rate
        self.answer_bytes = size
        try:
            while chunk := source.read(SEND_CHUNK):
                self.allow_time()
                outputfile.write(chunk)
        finally:
            self.connection.settimeout(self.timeout)

    def version_string(self) -> str:
        return self.server_version

    def end_headers(self) -> None:
        self.send_header("Cache-Control", self.cache_control)
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def list_directory(self, path: str) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "Not found")
        return None

    def log_message(self, format: str, *args: object) -> None:
        if self.verbose:
            # the request line is the client's: its control characters are shown, not obeyed
            sys.stderr.write(f"{self.address_string()} {printable(format % args)}\n")
