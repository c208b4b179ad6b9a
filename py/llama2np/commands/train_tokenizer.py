"""`llama2np train-tokenizer`: a BPE tokenizer as llama2.c trains one, in both file formats."""

import argparse
from pathlib import Path

from llama2np.commands.arguments import whole_number
from llama2np.runtime.checkpoint import MAX_SIZES

# 256 byte-fallback pieces plus <unk>, <s>, </s> come before any learned piece.
MIN_VOCAB_SIZE = 260
VOCAB_SIZE = whole_number("vocab size", MIN_VOCAB_SIZE, MAX_SIZES["vocab_size"],
                          advice="byte fallback alone needs 259 tokens, so a smaller one is too "
                          f"small; use {MIN_VOCAB_SIZE} to {MAX_SIZES['vocab_size']:,}.")
SENTENCES = whole_number("max sentences", 1, advice="use 1 or more.")
# SentencePiece aborts the process when it starts far more threads than it has sentences for.
THREADS = whole_number("threads", 1, 64, advice="use 1 to 64 (1 trains reproducibly).")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-tokenizer",
        help="train a SentencePiece BPE tokenizer on text or TinyStories-style JSON",
        description="Train a BPE tokenizer as llama2.c does for custom vocabularies and write "
        "PREFIX.model (SentencePiece) and PREFIX.bin (llama2.c's tokenizer format).",
    )
    parser.add_argument("--input", nargs="+", type=Path, required=True, metavar="FILE",
                        help="plain-text files (each line a sentence, as SentencePiece reads "
                        "them) or TinyStories JSON shards (a list of objects with a 'story' "
                        "field, read as llama2.c's train_vocab reads them)")
    parser.add_argument("--vocab-size", type=VOCAB_SIZE, required=True,
                        help=f"number of tokens ({MIN_VOCAB_SIZE} or more)")
    parser.add_argument("--out", type=Path, required=True, metavar="PREFIX",
                        help="output prefix: writes PREFIX.model and PREFIX.bin")
    parser.add_argument("--max-sentences", type=SENTENCES, default=10_000_000,
                        help="past this many sentences (lines), train on a fixed-seed sample of "
                        "this many, where llama2.c would train on all (default 10,000,000)")
    parser.add_argument("--threads", type=THREADS, default=1,
                        help="training threads (default 1, which makes training reproducible)")
    parser.add_argument("--force", action="store_true",
                        help="replace PREFIX.model and PREFIX.bin if they exist")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from llama2np.tools.models.tokenizer_training import train_tokenizer

    model, tokenizer = train_tokenizer(args.input, args.vocab_size, args.out, args.max_sentences,
                                       args.threads, args.force)
    print(f"Wrote {model} and {tokenizer}")
    return 0
