"""`llama2np generate`: run.c's command line, streaming the story to standard output."""

import argparse
import json
import os
import sys
from typing import BinaryIO

from llama2np.commands.arguments import real_number, whole_number
from llama2np.runtime.errors import UsageError
from llama2np.runtime.generate import Story
from llama2np.runtime.model import make_model
from llama2np.tools.models.model_files import load_any_checkpoint, load_any_tokenizer

SEED_LIMIT = (1 << 64) - 1  # run.c's seed is an unsigned 64-bit integer
DEFAULT_TOKENIZER = "tokenizer.bin"  # run.c's -z default, in the current folder


# Flag values are checked as the command line is parsed, before the model is read. Steps beyond
# the context mean the whole context, as in run.c, so they have no upper end.
TEMPERATURE = real_number("temperature", 0, advice="use a number of 0 or more (0 is greedy).")
TOPP = real_number("top-p", 0, 1, advice="use a number from 0 to 1.")
SEED = whole_number("seed", 0, SEED_LIMIT, advice=f"use 0 to {SEED_LIMIT} (0 = from the clock).")
STEPS = whole_number("steps", 0, advice="use 0 or more (0 = the whole context).")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write a story, as llama2.c's run does",
        description="Generate text from a llama2.c checkpoint with run.c's flags and defaults.",
    )
    parser.add_argument("checkpoint", help="llama2.c model file (.bin, version 0, 1 or 2) or "
                        "llama2.c train.py checkpoint (.pt)")
    parser.add_argument("-z", dest="tokenizer", default=DEFAULT_TOKENIZER, metavar="TOKENIZER",
                        help="llama2.c tokenizer file (tok*.bin), or a SentencePiece .model "
                        f"(with llama2np[tokenizer]); default {DEFAULT_TOKENIZER}, as run.c")
    parser.add_argument("-t", dest="temperature", type=TEMPERATURE, default=1.0, metavar="TEMP",
                        help="temperature, 0 or more; 0 is greedy (default 1.0)")
    parser.add_argument("-p", dest="topp", type=TOPP, default=0.9, metavar="TOPP",
                        help="top-p (nucleus) sampling in [0, 1]; 0 or 1 turns it off (default 0.9)")
    parser.add_argument("-s", dest="seed", type=SEED, default=0, metavar="SEED",
                        help="random seed; 0 takes it from the clock (default 0)")
    parser.add_argument("-n", dest="steps", type=STEPS, default=256, metavar="STEPS",
                        help="positions to run, prompt included; 0 = the whole context (default 256)")
    parser.add_argument("-i", dest="prompt", default="", metavar="PROMPT", help="the story's start")
    parser.add_argument("--probs", action="store_true",
                        help="instead of the text, print one JSON line per generated token: "
                        "its text, id, probability p at the temperature (before top-p) and the "
                        "five likeliest tokens with theirs; the same story as without it")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    checkpoint = load_any_checkpoint(args.checkpoint)
    if args.tokenizer == DEFAULT_TOKENIZER and not os.path.lexists(DEFAULT_TOKENIZER):
        raise UsageError(f"there is no {DEFAULT_TOKENIZER} in this folder, where run.c looks for "
                         "the tokenizer by default; name the model's tokenizer with -z.")
    tokenizer = load_any_tokenizer(args.tokenizer, checkpoint.config.vocab_size)
    story = Story(
        make_model(checkpoint), tokenizer, args.prompt,
        temperature=args.temperature, topp=args.topp, seed=args.seed, steps=args.steps,
        explain=args.probs,
    )
    # The story's bytes go out as UTF-8 whatever the terminal's encoding (run.c prints bytes,
    # and a story is UTF-8 by contract); each token is flushed so that it shows as it comes.
    out = sys.stdout.buffer
    if args.probs:
        write_explanations(story, out)
    else:
        # Until the story is done, not until a token adds no text: the first byte token of a
        # character adds none, and the story goes on after it.
        out.write(story.prompt_text.encode("utf-8"))
        out.flush()
        while not story.done:
            out.write(story.advance(max_tokens=1).encode("utf-8"))
            out.flush()
        out.write(b"\n")
        out.flush()
    stats = story.stats()
    if stats["generated_tokens"] > 1:
        print(f"achieved tok/s: {stats['tokens_per_second']:.1f} "
              f"({stats['generated_tokens']} tokens, first after "
              f"{stats['first_token_seconds'] * 1000:.1f} ms)", file=sys.stderr)
    return 0


def write_explanations(story: Story, out: BinaryIO) -> None:
    """One JSON object a line for each generated token, as it is written (the page's
    "why this word" view shows the same numbers)."""
    while not story.done:
        story.advance(max_tokens=1)
        for explanation in story.new_explanations():
            out.write(json.dumps(explanation, ensure_ascii=False).encode("utf-8") + b"\n")
        out.flush()
