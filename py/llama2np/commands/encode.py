"""`llama2np encode`: the token ids run.c's encoder gives a text, BOS first."""

import argparse

from llama2np.commands.arguments import whole_number
from llama2np.runtime.tokenizer import Tokenizer

# llama2.c keeps vocab_size in a C int; a size beyond that cannot be a model's.
VOCAB_LIMIT = (1 << 31) - 1
VOCAB_SIZE = whole_number("vocabulary size", 1, VOCAB_LIMIT,
                          advice=f"use the model's vocabulary size, from 1 to {VOCAB_LIMIT}.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "encode",
        help="print the token ids of a text",
        description="Encode TEXT as run.c does (BOS, dummy prefix, merges); print the ids.",
    )
    parser.add_argument("-z", dest="tokenizer", required=True, metavar="TOKENIZER",
                        help="llama2.c tokenizer file (tok*.bin)")
    parser.add_argument("--vocab-size", type=VOCAB_SIZE, default=None,
                        help="tokens in the vocabulary (default: every token in the file)")
    parser.add_argument("text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tokenizer = Tokenizer.load(args.tokenizer, args.vocab_size)
    print(" ".join(str(token) for token in tokenizer.encode(args.text)))
    return 0
