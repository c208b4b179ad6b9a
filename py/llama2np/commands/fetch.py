"""`llama2np fetch`: put a model's files in place, verified against its manifest."""

import argparse
from pathlib import Path

from llama2np.tools.models.fetch import MIRROR_VARIABLE, fetch
from llama2np.tools.paths import DEFAULT_MODEL_DIR


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch",
        help="download the model files and verify them",
        description=f"Put the files of a model manifest in place and check their sha256. "
        f"Set {MIRROR_VARIABLE} to a folder to copy them from there instead of downloading.",
    )
    parser.add_argument("model_dir", nargs="?", type=Path, default=DEFAULT_MODEL_DIR,
                        help="folder holding manifest.json (default: the project's stories260K/)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fetch(args.model_dir)
    return 0
