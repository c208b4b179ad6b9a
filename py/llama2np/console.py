"""Standard output, standard error and Ctrl+C for the command line.

Whatever happens to them becomes one of the command's own outcomes instead of a traceback or
Python's "Exception ignored" at exit: a reader that went away (`| head`) is `ReaderGone`, a full
or closed standard output an `OutputError` sentence, a failing standard error is dropped, and a
Ctrl+C that Python swallowed is raised again at the next write. `cli.main` sets this up first.
Standard library only, so that it is in place before NumPy's import can be interrupted.
"""

import io
import os
import sys

INTERRUPTED = 130  # what a shell reports for a command ended by Ctrl+C

# What a terminal would act on instead of showing: C0 and C1 controls and DEL (which can move
# the cursor, clear the screen or set the window's title), line and paragraph separators, and the
# marks that reorder text (a right-to-left override can make a name read as another).
UNPRINTABLE = {c for c in range(0x20)} | set(range(0x7F, 0xA0)) | {0x2028, 0x2029, 0x200E, 0x200F} \
    | set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def printable(text: str) -> str:
    """`text` (a file's or a client's words among them) safe for a terminal: every character it
    would act on is written as an escape, such as \\x1b or \\u202e; tabs and line ends too,
    so that one sentence stays one line."""
    return "".join(escaped(c) if ord(c) in UNPRINTABLE else c for c in text)


def escaped(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def say(sentence: str) -> None:
    """One `llama2np: ...` line on standard error (if it can still be written anywhere), with
    whatever a file or a client put in it made printable."""
    try:
        print(f"llama2np: {printable(sentence)}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass  # standard error is full or closed: there is nowhere left to say it



# Ctrl+C that Python could not deliver as a KeyboardInterrupt. The signal raises it in whatever
# code runs at that instant: in a callback (a weak reference's, inside an import) Python prints
# "Exception ignored ... KeyboardInterrupt" and goes on as if nothing happened; in NumPy's C
# extension import, it becomes an ImportError ("numpy._core.umath failed to import"). The
# handler below notes every Ctrl+C, so that an error it caused still ends as an interrupt, and
# one that was swallowed is raised at the next write or at the command's end.
interrupt_seen = False  # a Ctrl+C (or SIGTERM, SIGHUP) arrived
interrupt_pending = False  # ... and Python swallowed the KeyboardInterrupt it raised
signal_seen = 2  # which: SIGINT unless another


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (`kill`, `timeout`, a closed terminal, a cancelled CI job): the run
    stops as it does for Ctrl+C, removing what it had begun to write, and exits with 128 + n."""


def catch_interrupts() -> None:
    """One policy for every signal that asks a command to stop: Ctrl+C (SIGINT), SIGTERM and
    SIGHUP each raise an interrupt where the command is, so that its cleanup runs, and are
    noted besides; a signal that is ignored (SIGINT and SIGHUP under `nohup`) stays ignored."""
    import signal

    global interrupt_seen, interrupt_pending, signal_seen
    interrupt_seen = interrupt_pending = False
    signal_seen = signal.SIGINT
    sys.unraisablehook = note_swallowed_interrupt
    wanted = [(signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
              (signal.SIGHUP, signal.SIG_DFL)]
    for number, default in wanted:
        if signal.getsignal(number) is default:
            try:
                signal.signal(number, note_and_raise_interrupt)
            except ValueError:  # main() called outside the main thread: Python's handler stays
                pass


def note_and_raise_interrupt(signal_number: int, frame: object) -> None:
    import signal

    global interrupt_seen, signal_seen
    interrupt_seen = True
    signal_seen = signal_number
    raise KeyboardInterrupt if signal_number == signal.SIGINT else Stopped


def stopped_status() -> tuple[int, str]:
    """The exit status and the sentence for the signal that stopped the run."""
    import signal

    if signal_seen == signal.SIGINT:
        return INTERRUPTED, "interrupted."
    return 128 + signal_seen, f"stopped by {signal.Signals(signal_seen).name}."


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
    """The run is ending anyway: a second signal must not interrupt the goodbye."""
    import signal

    try:
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)
    except ValueError:  # main() called outside the main thread
        pass


def flush_quietly(status: int) -> int:
    """Flush what is left for standard output after a failure; if that fails too, drop it so
    that Python's own flush at exit has nothing left to complain about."""
    from llama2np.runtime.errors import OutputError

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
        status = stopped_status()[0]
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
        from llama2np.runtime.errors import OutputError

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
