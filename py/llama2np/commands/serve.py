"""`llama2np serve`: a built site on this machine, with the headers a static host should send."""

import argparse
from pathlib import Path

from llama2np.commands.arguments import real_number, whole_number
from llama2np.tools.paths import DEFAULT_SITE

TIMEOUT_SECONDS = 20.0  # as llama2np.tools.site.serve, which is imported only when serving


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a built site on this machine",
        description="Serve a site built by `llama2np build` over HTTP, on loopback by default.",
    )
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_SITE,
                        help="the built site (default: dist/)")
    parser.add_argument("--port", default=8000,
                        type=whole_number("port", 0, 65535, advice="use 0 to 65535 (0 picks one)."),
                        help="port (default 8000; 0 picks one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--timeout", default=TIMEOUT_SECONDS,
                        type=real_number("timeout", 0.001, 3600, advice="use 0.001 to 3600 seconds."),
                        help="seconds a client may take to send a request, or to take each "
                        f"part of an answer, before its connection is closed "
                        f"(default {TIMEOUT_SECONDS:g})")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llama2np.runtime.errors import UsageError
    from llama2np.tools.site.serve import serve

    if not args.host.strip():  # Python's servers take "" for every interface
        raise UsageError("--host is empty, which would listen on every interface; name the "
                         "address: 127.0.0.1 is this machine only, 0.0.0.0 every interface.")

    serve(args.directory, args.host, args.port, args.verbose, args.timeout)
    return 0
