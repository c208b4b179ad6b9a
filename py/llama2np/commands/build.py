"""`llama2np build`: the demo as a self-contained static site."""

import argparse
from pathlib import Path

from llama2np.tools.paths import DEFAULT_CACHE, DEFAULT_SITE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build the demo as a static site",
        description="Bundle the page, Pyodide, NumPy, the llama2np runtime and a validated model "
        "into a static site that needs nothing from any other origin.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_SITE, help="output folder (default: dist/)")
    parser.add_argument("--checkpoint", type=Path, help="llama2.c model (default: stories260K)")
    parser.add_argument("--tokenizer", type=Path, help="its llama2.c tokenizer .bin")
    parser.add_argument("--model", nargs=2, type=Path, action="append", default=[],
                        metavar=("CHECKPOINT", "TOKENIZER"),
                        help="a model for the page's picker (repeatable): after --checkpoint's "
                        "when that is given; without it, the first --model is the default and "
                        "the demo's model is left out")
    parser.add_argument("--numpy-wheel", type=Path,
                        help="a local copy of the NumPy wheel built for Pyodide 0.27.7")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where downloaded sources are kept (default: .cache/site-sources)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llama2np.tools.site.assets import wire_bytes
    from llama2np.tools.site.build import build_site

    site = build_site(args.out, args.checkpoint, args.tokenizer, numpy_wheel=args.numpy_wheel,
                      cache=args.cache, models=[tuple(pair) for pair in args.model])
    plain, wire = wire_bytes(site)
    print(f"Built {site}: {plain:,} bytes of files, {wire:,} with brotli (all of them; a first "
          "visit downloads less, see docs/hosting.md).")
    return 0
