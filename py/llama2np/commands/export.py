"""`llama2np export IN OUT [--version 0|1|2] [--group-size N] [--force]`: a train.py .pt or any
llama2.c .bin, rewritten in the chosen llama2.c version (2 quantises to Q8_0)."""

import argparse
from pathlib import Path

from llama2np.commands.arguments import whole_number
from llama2np.tools.models.checkpoint_writer import DEFAULT_GROUP_SIZE
from llama2np.tools.models.export import export_checkpoint

GROUP_SIZE = whole_number("group size", 1, 2**31 - 1, advice="use a positive number such as 64.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="convert a train.py .pt or llama2.c .bin to llama2.c version 0, 1 or 2",
        description="Write a checkpoint in llama2.c's format: version 0 (legacy fp32, what run.c "
        "reads), 1 (fp32) or 2 (Q8_0, int8 in groups, about a quarter of the size).",
    )
    parser.add_argument("input", type=Path, help="train.py .pt or llama2.c .bin")
    parser.add_argument("output", type=Path, help="the .bin to write")
    parser.add_argument("--version", type=int, choices=(0, 1, 2), default=0,
                        help="llama2.c checkpoint version (default 0, run.c's format)")
    parser.add_argument("--group-size", type=GROUP_SIZE, default=DEFAULT_GROUP_SIZE,
                        help="Q8_0 group size for version 2 (default 64; halved until it divides "
                        "dim and hidden_dim, and the size used is printed)")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report, source_format = export_checkpoint(args.input, args.output, args.version, args.group_size,
                                               args.force)
    groups = ""
    if args.version == 2:
        used = report.group_size
        groups = f" in groups of {used}" + (f" (--group-size {args.group_size} does not divide "
                                             "both dim and hidden_dim)" if used < args.group_size
                                             and args.group_size != DEFAULT_GROUP_SIZE else "")
    print(f"Wrote {args.output}: {report.format}{groups}, {report.file_bytes:,} bytes "
          f"(from {source_format}).")
    return 0
