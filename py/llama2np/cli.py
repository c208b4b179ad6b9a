"""The `llama2np` command: one sub-command per module in `commands/`, each registering its own parser.

Every sub-command module has `register(subparsers)`, which adds its parser and sets `run`, a
function taking the parsed arguments and returning an exit status.

However a run ends, the user sees at most one sentence on standard error, never a traceback:
- a product error (`Llama2npError`): its sentence and its status (1 bad data, 2 bad usage);
- a usage error found by argparse: the usage line, then one sentence; status 2;
- Ctrl+C, at any moment from start-up on: "llama2np: interrupted."; status 130 (128 + SIGINT);
- the reader of standard output went away (`llama2np generate ... | head`): nothing; status 0,
  since the reader chose to stop reading, as with any Unix filter;
- standard output full (`> /dev/full`) or closed (`>&-`): one sentence; status 1, since output
  the user asked for is lost;
- not enough memory: one sentence; status 1;
- anything else is a bug: one line naming it and how to see the traceback (LLAMA2NP_DEBUG=1).

This module imports only the standard library at module level (and `console`, which does the
same): the console script imports it before `main` runs, and NumPy's import (a tenth of a second) must happen inside `main`'s guard
so that Ctrl+C during start-up ends as quietly as Ctrl+C mid-story.
"""

import os
import sys

from llama2np import console
from llama2np.console import (
    ReaderGone,
    catch_interrupts,
    discard_stdout,
    flush_quietly,
    ignore_further_interrupts,
    protect_standard_streams,
    raise_pending_interrupt,
    say,
)
from llama2np.file_errors import FILE_ADVICE, file_trouble

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
    import argparse

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

DEBUG_VARIABLE = "LLAMA2NP_DEBUG"  # set to 1 to see the traceback of an internal error
MESSAGE_CHARACTERS = 300  # of an exception's text repeated in a sentence


def build_parser() -> "argparse.ArgumentParser":
    import argparse
    import importlib

    import llama2np

    class Parser(argparse.ArgumentParser):
        """argparse's parser whose usage errors end, like every failure, in one `llama2np:`
        sentence (after the usage line) and status 2."""

        def error(self, message: str) -> None:
            self.print_usage(sys.stderr)
            # argparse's own messages say what is wrong, not what to do (the flags' types do).
            advice = "" if message.endswith(".") else f"; see `{self.prog} --help`."
            self.exit(2, f"llama2np: {shorten(message)}{advice}\n")

    parser = Parser(
        prog="llama2np",
        description="Run llama2.c Llama-2 models with NumPy, on the command line and in the browser.",
    )
    parser.add_argument("--version", action="version", version=f"llama2np {llama2np.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `llama2np ARGS` and return the exit status; the console script exits with it."""
    command = "llama2np"
    try:
        catch_interrupts()
        protect_standard_streams()
        args = build_parser().parse_args(argv)
        command = f"llama2np {args.command}"
        status = args.run(args) or 0
        raise_pending_interrupt()
        sys.stdout.flush()  # a full or closed output shows here, not in Python's exit
        return status
    except SystemExit as done:  # argparse, after --help, --version or a usage error
        status = done.code if isinstance(done.code, int) else 0 if done.code is None else 1
        return flush_quietly(status)
    except BaseException as error:  # every way a run can end is decided here
        try:
            return flush_quietly(failure(error, command))
        except KeyboardInterrupt:  # while saying goodbye: the run ends all the same
            return console.stopped_status()[0]


def failure(error: BaseException, command: str) -> int:
    """Say what ended the run in one sentence and return the exit status for it."""
    from llama2np.runtime.errors import Llama2npError

    if isinstance(error, KeyboardInterrupt) or console.interrupt_seen:  # it may be a signal's
        ignore_further_interrupts()
        discard_stdout()  # a reader that is not reading must not hold up the exit
        status, sentence = console.stopped_status()
        say(sentence)
        return status
    if isinstance(error, ReaderGone):
        discard_stdout()
        return 0
    if isinstance(error, Llama2npError):
        say(str(error))
        return error.exit_status
    if isinstance(error, ImportError):  # an optional package (an extra) that is not installed
        from llama2np.extras import missing_extra

        say(missing_extra(command.removeprefix("llama2np "), error))
        return 1
    if isinstance(error, OSError) and error.errno in FILE_ADVICE:
        say(file_trouble(error))
        return 1
    if isinstance(error, MemoryError):
        say(f"not enough memory to finish `{command}`; close other programs, or use a smaller "
            "model or fewer steps.")
        return 1
    if not isinstance(error, Exception):  # GeneratorExit and the like: not ours to hide
        raise error
    debug = os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    if debug:
        import traceback

        traceback.print_exception(error)
    detail = shorten(str(error).strip().split("\n")[0])
    named = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    where = "the traceback is above" if debug else f"run again with {DEBUG_VARIABLE}=1 for the details"
    say(f"internal error in `{command}` ({named}); {where}, and please report it.")
    return 1


def shorten(text: str) -> str:
    """An exception's text as a sentence repeats it: some repeat a whole argument or file."""
    return text if len(text) <= MESSAGE_CHARACTERS else text[:MESSAGE_CHARACTERS] + "..."


if __name__ == "__main__":
    sys.exit(main())
