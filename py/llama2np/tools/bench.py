"""Placeholder for `llama2np bench`; not written yet."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="(not written yet)")
    parser.set_defaults(run=lambda args: 2)
