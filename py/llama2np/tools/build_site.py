"""Placeholder for `llama2np build-site`; not written yet."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("build", help="(not written yet)")
    parser.set_defaults(run=lambda args: 2)
