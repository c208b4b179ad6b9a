"""Placeholder for `llama2np train-tokenizer`; not written yet."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train-tokenizer", help="(not written yet)")
    parser.set_defaults(run=lambda args: 2)
