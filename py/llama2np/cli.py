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

This module imports only the standard library at module level: the console script imports it
before `main` runs, and NumPy's import (a tenth of a second) must happen inside `main`'s guard
so that Ctrl+C during start-up ends as quietly as Ctrl+C mid-story.
"""

import io
import os
import sys

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
INTERRUPTED = 130  # what a shell reports for a command ended by Ctrl+C
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
            return INTERRUPTED


def failure(error: BaseException, command: str) -> int:
    """Say what ended the run in one sentence and return the exit status for it."""
    from llama2np.errors import Llama2npError

    if isinstance(error, KeyboardInterrupt) or interrupt_seen:  # the error may be Ctrl+C's
        ignore_further_interrupts()
        discard_stdout()  # a reader that is not reading must not hold up the exit
        say("interrupted.")
        return INTERRUPTED
    if isinstance(error, ReaderGone):
        discard_stdout()
        return 0
    if isinstance(error, Llama2npError):
        say(str(error))
        return error.exit_status
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


def say(sentence: str) -> None:
    """One `llama2np: ...` line on standard error (if it can still be written anywhere)."""
    try:
        print(f"llama2np: {sentence}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass  # standard error is full or closed: there is nowhere left to say it


def shorten(text: str) -> str:
    """An exception's text as a sentence repeats it: some repeat a whole argument or file."""
    return text if len(text) <= MESSAGE_CHARACTERS else text[:MESSAGE_CHARACTERS] + "..."


# Ctrl+C that Python could not deliver as a KeyboardInterrupt. The signal raises it in whatever
# code runs at that instant: in a callback (a weak reference's, inside an import) Python prints
# "Exception ignored ... KeyboardInterrupt" and goes on as if nothing happened; in NumPy's C
# extension import, it becomes an ImportError ("numpy._core.umath failed to import"). The
# handler below notes every Ctrl+C, so that an error it caused still ends as an interrupt, and
# one that was swallowed is raised at the next write or at the command's end.
interrupt_seen = False  # a Ctrl+C arrived
interrupt_pending = False  # ... and Python swallowed the KeyboardInterrupt it raised


def catch_interrupts() -> None:
    """Note every Ctrl+C (unless SIGINT is ignored, as under `nohup`) besides raising it."""
    import signal

    global interrupt_seen, interrupt_pending
    interrupt_seen = interrupt_pending = False
    sys.unraisablehook = note_swallowed_interrupt
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        try:
            signal.signal(signal.SIGINT, note_and_raise_interrupt)
        except ValueError:  # main() called outside the main thread: Python's handler stays
            pass


def note_and_raise_interrupt(signal_number: int, frame: object) -> None:
    global interrupt_seen
    interrupt_seen = True
    raise KeyboardInterrupt


def note_swallowed_interrupt(report: object) -> None:
    """sys.unraisablehook: a KeyboardInterrupt Python could not raise becomes pending; any
    other exception it could not raise is reported as Python reports it."""
    global interrupt_pending
    if isinstance(report.exc_value, KeyboardInterrupt):
        interrupt_pending = True
    else:
        sys.__unraisablehook__(report)


def raise_pending_interrupt() -> None:
    """Raise a Ctrl+C that was swallowed where it arrived."""
    if interrupt_pending:
        raise KeyboardInterrupt


def ignore_further_interrupts() -> None:
    """The run is ending anyway: a second Ctrl+C must not interrupt the goodbye."""
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # main() called outside the main thread
        pass


def flush_quietly(status: int) -> int:
    """Flush what is left for standard output after a failure; if that fails too, drop it so
    that Python's own flush at exit has nothing left to complain about."""
    from llama2np.errors import OutputError

    try:
        sys.stdout.flush()
    except ReaderGone:
        discard_stdout()
    except OutputError as error:
        if status == 0:
            say(str(error))
            status = 1
        discard_stdout()
    except KeyboardInterrupt:
        discard_stdout()
        status = INTERRUPTED
    return status


def discard_stdout() -> None:
    """From now on, drop what is written to standard output (it failed, or the user stopped)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if isinstance(getattr(buffer, "raw", None), StandardStream):
        buffer.raw.discard = True


class ReaderGone(BrokenPipeError):
    """The program reading standard output has closed it (EPIPE)."""


class StandardStream(io.RawIOBase):
    """File descriptor 1 or 2 for `sys.stdout`/`sys.stderr`, turning a failed write into the
    product's own outcome: on standard output a broken pipe becomes `ReaderGone` (a quiet end)
    and any other failure an `OutputError` sentence; on standard error failures are dropped,
    since there is nowhere left to report them."""

    def __init__(self, fd: int, *, closed_at_start: bool) -> None:
        super().__init__()
        self.fd = fd
        self.closed_at_start = closed_at_start  # fd was closed; /dev/null now holds its place
        self.discard = False  # set once the run has ended with a failure of this stream

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return not self.closed_at_start and os.isatty(self.fd)

    def write(self, data: bytes) -> int:
        from llama2np.errors import OutputError

        if self.discard or (self.closed_at_start and self.fd == 2):
            return len(data)
        if self.fd == 1:
            raise_pending_interrupt()  # at the latest with the next token
        if self.closed_at_start:
            raise OutputError("standard output is closed, so the output has nowhere to go; "
                              "send it to a file or a pipe instead.")
        try:
            return write_waiting(self.fd, data)
        except OSError as error:
            if self.fd == 2:
                self.discard = True
                return len(data)
            if isinstance(error, BrokenPipeError):
                raise ReaderGone(*error.args) from None
            raise OutputError(f"cannot write to standard output ({error.strerror}); free some "
                              "space there or send the output elsewhere.") from None


def write_waiting(fd: int, data: bytes) -> int:
    """os.write, waiting for room when another program left the descriptor non-blocking (a
    pipe shared with Node.js, for one), where a plain write fails with EAGAIN."""
    while True:
        try:
            return os.write(fd, data)
        except BlockingIOError:
            import select

            select.select([], [fd], [])


def protect_standard_streams() -> None:
    """Make standard output and error `StandardStream`s, with errors="backslashreplace" so that
    no text can fail to encode (PYTHONIOENCODING=ascii, a C locale). A descriptor 0-2 that was
    closed at start-up gets /dev/null in its place first: otherwise the next file opened would
    take its number, and a tool writing to "standard output" would write into that file."""
    closed = [fd for fd in (0, 1, 2) if not is_open(fd)]
    for _ in closed:  # in order: open() takes the lowest free descriptor, the closed one
        os.open(os.devnull, os.O_RDWR)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        current = getattr(sys, name)
        if current is not None and current is not getattr(sys, f"__{name}__"):
            continue  # a caller (a test capturing output) has its own stream there
        encoding = getattr(current, "encoding", None) or "utf-8"
        stream = StandardStream(fd, closed_at_start=fd in closed)
        setattr(sys, name, io.TextIOWrapper(
            io.BufferedWriter(stream), encoding=encoding, errors="backslashreplace",
            line_buffering=fd == 2 or stream.isatty(), write_through=fd == 2,
        ))


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
