"""`llama2np bench`: decode and prompt speed of the runtime beside the straightforward port, on
this CPython or, with --browser, inside Chromium's Pyodide; --shapes sweeps llama2.c's sizes."""

import argparse
from pathlib import Path

from llama2np.commands.arguments import whole_number
from llama2np.runtime.errors import UsageError

# Decode speed counts from the first token (as run.c does), so it needs two positions at least;
# the upper ends depend on the model's context and are checked once it is read.
STEPS = whole_number("steps", 2, advice="use 2 or more decode positions.")
PROMPT_TOKENS = whole_number("prompt tokens", 1, advice="use 1 or more.")
REPEAT = whole_number("repeat", 1, advice="use 1 or more runs per figure.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure tokens/second beside the straightforward port",
        description="Measure decode tokens/s (greedy), prompt tokens/s and time to first token "
        "of llama2np and of a straightforward per-head NumPy port, in one process.",
    )
    parser.add_argument("checkpoint", nargs="?", type=Path,
                        help="llama2.c model file (default: stories260K, fetched if needed)")
    parser.add_argument("-n", "--steps", type=STEPS, default=256, help="decode positions (default 256)")
    parser.add_argument("--prompt-tokens", type=PROMPT_TOKENS, default=100,
                        help="prompt length for prompt speed and time to first token (default 100)")
    parser.add_argument("--repeat", type=REPEAT, default=5, help="runs per figure; the best counts")
    parser.add_argument("--shapes", default=None, metavar="LIST",
                        help="sweep llama2.c's sizes instead of one model: a comma-separated list "
                        "of 260K, 15M, 42M, 110M (synthetic weights for the three larger), or all")
    parser.add_argument("--browser", action="store_true",
                        help="measure inside Chromium's Pyodide instead of this CPython")
    parser.add_argument("--site", type=Path, default=None,
                        help="with --browser: a site built by `llama2np build` (default: build one)")
    parser.add_argument("--links", choices=("all", "localhost"), default="all",
                        help="with --browser: the links a first visit is measured over from each "
                        "host (default all: localhost, 10 Mbit/s and 1.6 Mbit/s)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.site is not None and not args.browser:
        raise UsageError("--site is for bench --browser; add --browser, or leave --site out to "
                         "measure on this CPython.")
    if args.links != "all" and not args.browser:
        raise UsageError("--links is for bench --browser; add --browser, or leave --links out to "
                         "measure on this CPython.")
    if args.shapes is not None:
        from llama2np.tools.bench.sweep import parse_shapes, sweep

        if args.browser or args.checkpoint is not None:
            raise UsageError("--shapes measures its own models on this CPython; leave out the "
                             "checkpoint and --browser (for the browser, build a site with "
                             "`llama2np build --checkpoint ...` and pass it with --site).")
        print(sweep(parse_shapes(args.shapes), args.steps, args.prompt_tokens, args.repeat))
    elif args.browser:
        from llama2np.tools.bench.browser import bench_browser

        if args.checkpoint is not None:
            raise UsageError("bench --browser measures the built site's model; pass --site to "
                             "measure a site built with `llama2np build --checkpoint ...`.")
        print(bench_browser(args.site, args.steps, args.prompt_tokens, args.repeat,
                            all_links=args.links == "all"))
    else:
        from llama2np.tools.bench.cpython import bench_cpython

        print(bench_cpython(args.checkpoint, args.steps, args.prompt_tokens, args.repeat))
    return 0
