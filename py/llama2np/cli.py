"""The `llama2np` command: one sub-command per module in `commands/`, each registering its own parser.

Every sub-command module has `register(subparsers)`, which adds its parser and sets `run`, a
function taking the parsed arguments and returning an exit status. Errors of the product
(`Llama2npError`) become one line on standard error and the exit status they carry; argparse's
own usage errors exit with 2.
"""

import argparse
import importlib
import sys

# Sub-command modules (see `commands/__init__.py`), in the order `llama2np --help` lists them.
# To add a command, write `commands/NAME.py` with `register` and `run`, and list it here.
COMMAND_MODULES = (
    "llama2np.commands.generate",
    "llama2np.commands.encode",
    "llama2np.commands.fetch",
    "llama2np.commands.bench",
    "llama2np.commands.build",
    "llama2np.commands.serve",
    "llama2np.commands.validate",
    "llama2np.commands.export",
    "llama2np.commands.train_tokenizer",
    "llama2np.commands.export_tokenizer",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llama2np",
        description="Run llama2.c Llama-2 models with NumPy, on the command line and in the browser.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from llama2np.errors import Llama2npError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except Llama2npError as error:
        print(f"llama2np: {error}", file=sys.stderr)
        return error.exit_status
    except ImportError as error:  # an optional package (an extra) that is not installed
        from llama2np.extras import missing_extra

        print(f"llama2np: {missing_extra(args.command, error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("llama2np: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
