"""`llama2np export-tokenizer`: a SentencePiece .model as llama2.c's tokenizer .bin."""

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-tokenizer",
        help="write a SentencePiece .model as llama2.c's tokenizer .bin",
        description="Export a SentencePiece model to the llama2.c tokenizer format.",
    )
    parser.add_argument("model", type=Path, help="SentencePiece .model file")
    parser.add_argument("--out", type=Path, help="output .bin (default: beside the model)")
    parser.add_argument("--force", action="store_true", help="replace the output if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llama2np.tools.models.tokenizer_export import export_tokenizer

    print(f"Wrote {export_tokenizer(args.model, args.out, args.force)}")
    return 0
