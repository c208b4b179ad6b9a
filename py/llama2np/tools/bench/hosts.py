"""A built site served three ways on loopback, as its owners would serve it: `llama2np serve`,
Python's stock `http.server`, and Debian's nginx with its stock `mime.types` and `gzip on`
(a config of our own, no site-specific setting)."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from llama2np.runtime.errors import Llama2npError

HOSTS = ("llama2np serve", "http.server", "nginx")
NGINX_MIME_TYPES = Path("/etc/nginx/mime.types")  # where Debian's nginx package puts it
NGINX_CONFIG = """\
daemon off;
worker_processes 1;
{user}
pid {scratch}/nginx.pid;
error_log {scratch}/error.log;
events {{ worker_connections 256; }}
http {{
    include {mime_types};
    default_type application/octet-stream;
    gzip on;
    access_log off;
    client_body_temp_path {scratch}/body;
    proxy_temp_path {scratch}/proxy;
    fastcgi_temp_path {scratch}/fastcgi;
    uwsgi_temp_path {scratch}/uwsgi;
    scgi_temp_path {scratch}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root "{site}";
    }}
}}
"""


def nginx_available() -> bool:
    return shutil.which("nginx") is not None and NGINX_MIME_TYPES.is_file()


@contextlib.contextmanager
def serving(site: Path, host: str) -> Iterator[int]:
    """Serve `site` with `host` (one of HOSTS) on a loopback port, which this yields."""
    if host == "llama2np serve":
        from llama2np.tools.site.serve import start_server

        server, url = start_server(site)
        try:
            yield int(url.rstrip("/").rsplit(":", 1)[1])
        finally:
            server.shutdown()
        return
    with tempfile.TemporaryDirectory(prefix="llama2np-host-") as scratch:
        port = free_port()
        if host == "http.server":
            command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                       "--directory", str(site)]
        elif host == "nginx":
            if not nginx_available():
                raise Llama2npError("nginx is not installed; run `apt-get install nginx` and retry.")
            config = Path(scratch) / "nginx.conf"
            folder = str(site.resolve())
            if any(c in folder for c in '"\\$') or not folder.isprintable():
                raise Llama2npError(f"nginx cannot be pointed at {folder!r} safely (quotes, "
                                    "backslashes, $ and control characters have meanings in its "
                                    "config); move the site to a plainer folder name.")
            # Started as root, nginx's workers drop to nobody, who cannot read a private folder.
            user = "user root;" if os.geteuid() == 0 else ""
            config.write_text(NGINX_CONFIG.format(user=user, scratch=scratch, port=port,
                                                  site=folder, mime_types=NGINX_MIME_TYPES))
            command = ["nginx", "-c", str(config), "-e", f"{scratch}/error.log"]
        else:
            raise ValueError(host)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(port, process, host)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, host: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = (process.stderr.read() or b"").decode(errors="replace").strip()[-300:]
            raise Llama2npError(f"{host} did not start ({reason or 'no output'}).")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise Llama2npError(f"{host} did not listen on port {port} within {seconds:.0f} s.")
