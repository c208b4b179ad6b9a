"""`llama2np validate`: a model's report (format, config, sizes, per-tensor statistics), and a
non-zero exit with the reasons when anything is wrong. The checks live in `tools/models/validation.py`."""

import argparse
import json
from pathlib import Path

from llama2np.console import say
from llama2np.tools.models.validation import format_report, validate_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a checkpoint (and its tokenizer) before publishing it",
        description="Check a llama2.c checkpoint (.bin, versions 0-2) or a train.py .pt: header, "
        "exact size, tensor shapes, NaN/Inf, all-zero tensors, and that the tokenizer fits.",
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("-z", "--tokenizer", type=Path, help="llama2.c tokenizer .bin to check against it")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = validate_model(args.checkpoint, args.tokenizer)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(format_report(report))
    if not report.ok:
        problems = report.problems
        more = f" (and {len(problems) - 1} more problems, listed in the report)" if len(problems) > 1 else ""
        say(f"{problems[0].rstrip('.')}{more}.")
        return 1
    return 0
