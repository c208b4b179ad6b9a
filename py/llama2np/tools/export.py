"""Placeholder for `llama2np export`; not written yet."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="(not written yet)")
    parser.set_defaults(run=lambda args: 2)
