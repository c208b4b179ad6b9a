"""The command line ends every run with an exit status and at most one sentence, never a
traceback: bad flags, Ctrl+C at any moment, standard output closed, full or abandoned by its
reader, an ASCII-only terminal, and a bug (an unexpected exception).

Each run is a real `llama2np` in a subprocess with its address space capped and a time limit
(`hostile.run_bounded`, or `start`/`finish` below where the test needs its own descriptors or
sends a signal); the peak resident memory of every run is bounded too.
"""

import fcntl
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import llama2np
import pytest
from hostile import LAUNCHER, MEMORY_LIMIT_MB, Outcome, assert_refused, run_bounded

pytestmark = pytest.mark.hostile

ROOT = Path(__file__).resolve().parents[2]
# Python, NumPy and argparse take about 40 MB; stories260K with its cache and story a few more.
# A run that read a model twice over or allocated by a header's claims would pass this.
PEAK_MB = 150
TIMEOUT = 60.0  # seconds; a hang, not a slow machine, is what this catches
PIPE_CAPACITY = 4096  # the smallest pipe Linux makes: a pre-filled one blocks the first write


def entry_point() -> tuple[str, str]:
    """(module, function) of the `llama2np` console script, as pyproject.toml declares it."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        target = tomllib.load(file)["project"]["scripts"]["llama2np"]
    module, function = target.split(":")
    return module, function


def console_script(before: str = "", after: str = "") -> list[str]:
    """An argv running what pip's `llama2np` script runs (`import re, sys`, the entry point's
    import, then main()), with `before` and `after` around the entry point's import; the
    command's own arguments follow it."""
    module, function = entry_point()
    code = (f"import re, sys\n{before}\nfrom {module} import {function}\n{after}\n"
            f"sys.exit({function}())")
    return [sys.executable, "-c", code]


def environment(**extra: str) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **extra}
    if "LLAMA2NP_DEBUG" not in extra:
        env.pop("LLAMA2NP_DEBUG", None)
    return env


def start(argv: list[str], stdout: int, env: dict | None = None) -> subprocess.Popen:
    """`argv` with standard output on descriptor `stdout`, through run_bounded's launcher (the
    address space capped, signals passed on, the command's own peak RSS reported)."""
    report = Path(tempfile.mkdtemp(prefix="llama2np-cli-")) / "peak-kb"
    launcher = [sys.executable, "-c", LAUNCHER, str(MEMORY_LIMIT_MB << 20), str(report), *argv]
    process = subprocess.Popen(launcher, stdin=subprocess.DEVNULL, stdout=stdout,
                               stderr=subprocess.PIPE, env=env or environment())
    process.peak_report = report
    return process


def finish(process: subprocess.Popen, begun: float, timeout: float = TIMEOUT) -> Outcome:
    """Wait for `process` and report it as `run_bounded` does (the command's own peak RSS);
    a process still running `timeout` seconds after `begun` is killed and fails the test."""
    killer = threading.Timer(max(0.0, begun + timeout - time.monotonic()), process.kill)
    killer.start()
    _, wait_status, usage = os.wait4(process.pid, 0)
    killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    if process.returncode == -signal.SIGKILL:
        raise subprocess.TimeoutExpired(process.args, timeout)
    stderr = process.stderr.read().decode("utf-8", "replace")
    report = process.peak_report
    peak_kb = int(report.read_text()) if report.is_file() else 0
    shutil.rmtree(report.parent, ignore_errors=True)
    return Outcome(process.returncode, "", stderr, peak_kb / 1024, time.monotonic() - begun)


def full_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) whose buffer is already full: whoever writes next waits."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_CAPACITY)
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"x" * PIPE_CAPACITY)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    return read_end, write_end


def sleeping_in(pid: int, *functions: str) -> bool:
    """Whether the command that launcher `pid` started sleeps in a kernel function named with
    one of `functions`."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        where = "".join(Path(f"/proc/{child}/wchan").read_text() for child in children)
    except OSError:
        return False
    return any(function in where for function in functions)


def wait_until_sleeping_in(process: subprocess.Popen, begun: float, *functions: str) -> None:
    while not sleeping_in(process.pid, *functions):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < begun + TIMEOUT, f"the child never slept in {functions}"
        time.sleep(0.01)


def assert_quiet(outcome: Outcome) -> None:
    """Nothing of Python's own leaked: no traceback, no 'Exception ignored' from its exit."""
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert "Exception ignored" not in outcome.stderr, outcome.stderr
    assert outcome.peak_rss_mb < PEAK_MB, outcome.peak_rss_mb


@pytest.fixture
def story_args(model_dir) -> list[str]:
    return ["generate", str(model_dir / "stories260K.bin"), "-z", str(model_dir / "tok512.bin"),
            "-s", "1"]


# -- --version --------------------------------------------------------------------------------

def test_version_is_the_packages():
    outcome = run_bounded("--version")
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout == f"llama2np {llama2np.__version__}\n"
    assert llama2np.__version__ == "0.1.0"
    assert_quiet(outcome)


def test_console_script_entry_point_runs_main():
    outcome = run_bounded(command=[*console_script(), "--version"])
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout == f"llama2np {llama2np.__version__}\n"


# -- flags out of range: refused while parsing, before any file is read --------------------------

# The model files named here do not exist: a flag checked only after reading the model would be
# answered with "does not exist" instead of the flag's own sentence.
MISSING = ["missing.bin", "-z", "missing-tok.bin"]
BAD_FLAGS = [
    (["generate", *MISSING, "-t", "nan"], "temperature nan is out of range"),
    (["generate", *MISSING, "-t", "inf"], "temperature inf is out of range"),
    (["generate", *MISSING, "-t", "-0.5"], "temperature -0.5 is out of range"),
    (["generate", *MISSING, "-t", "warm"], "temperature warm is not a number"),
    (["generate", *MISSING, "-p", "2"], "top-p 2 is out of range"),
    (["generate", *MISSING, "-p", "-0.1"], "top-p -0.1 is out of range"),
    (["generate", *MISSING, "-p", "nan"], "top-p nan is out of range"),
    (["generate", *MISSING, "-s", "-5"], "seed -5 is out of range"),
    (["generate", *MISSING, "-s", str(1 << 64)], f"seed {1 << 64} is out of range"),
    (["generate", *MISSING, "-s", "1e3"], "seed 1e3 is not a whole number"),
    (["generate", *MISSING, "-n", "-3"], "steps -3 is out of range"),
    (["generate", *MISSING, "-n", "9" * 5000], "is not a whole number"),
    (["encode", "-z", "missing-tok.bin", "--vocab-size", "0", "hi"], "vocabulary size 0"),
    (["encode", "-z", "missing-tok.bin", "--vocab-size", "-3", "hi"], "vocabulary size -3"),
    (["encode", "-z", "missing-tok.bin", "--vocab-size", str(1 << 40), "hi"],
     f"vocabulary size {1 << 40} is out of range"),
    (["bench", "missing.bin", "-n", "0"], "steps 0 is out of range"),
    (["bench", "missing.bin", "-n", "1"], "steps 1 is out of range"),
    (["bench", "missing.bin", "-n", "-4"], "steps -4 is out of range"),
    (["bench", "missing.bin", "--repeat", "0"], "repeat 0 is out of range"),
    (["bench", "missing.bin", "--repeat", "-1"], "repeat -1 is out of range"),
    (["bench", "missing.bin", "--prompt-tokens", "0"], "prompt tokens 0 is out of range"),
    (["bench", "missing.bin", "--prompt-tokens", "-2"], "prompt tokens -2 is out of range"),
    (["bench", "missing.bin", "--site", "somewhere"], "--site is for bench --browser"),
    (["bench", "--browser", "missing.bin"], "measures the built site's model"),
]


@pytest.mark.parametrize(("args", "phrase"), BAD_FLAGS, ids=lambda value: " ".join(value)[:60]
                         if isinstance(value, list) else None)
def test_bad_flag_is_refused_before_any_work(tmp_path, args, phrase):
    outcome = run_bounded(*args, cwd=tmp_path)
    sentence = assert_refused(outcome, 2, phrase)
    assert "does not exist" not in sentence
    assert_quiet(outcome)
    assert list(tmp_path.iterdir()) == []


def test_argparse_errors_are_one_sentence_after_the_usage(tmp_path):
    outcome = run_bounded("generate", *MISSING, "--bogus", "x" * 100_000, cwd=tmp_path)
    sentence = assert_refused(outcome, 2, "unrecognized arguments: --bogus xxx", "--help")
    assert outcome.stderr.startswith("usage: llama2np")
    assert len(outcome.stderr.splitlines()) <= 6  # the usage, wrapped, and the sentence
    assert len(sentence) < 600


@pytest.mark.parametrize(("flags", "phrase"), [
    (["-n", "513"], "steps 513 is beyond the 512-token context"),
    (["--prompt-tokens", "512"], "prompt tokens 512 leave no room"),
    (["--prompt-tokens", str(10**12)], "use --prompt-tokens 511 or fewer"),
])
def test_bench_lengths_beyond_the_context_are_refused(model_dir, flags, phrase):
    outcome = run_bounded("bench", model_dir / "stories260K.bin", *flags)
    assert_refused(outcome, 2, phrase, "stories260K.bin")
    assert_quiet(outcome)


def test_steps_beyond_the_context_mean_the_whole_context(story_args):
    # run.c clamps steps to the context, so a huge -n is a story, not an error (nor gigabytes).
    outcome = run_bounded(*story_args, "-t", "0", "-n", str(10**30))
    assert outcome.status == 0, outcome.stderr
    tokens = int(re.search(r"\((\d+) tokens", outcome.stderr).group(1))
    assert 1 < tokens <= 511
    assert outcome.stdout.startswith("Once upon a time")
    assert_quiet(outcome)


# -- standard output closed, full, or abandoned by its reader -----------------------------------

def shell(command: str, *args: object) -> list[str]:
    """An argv running `command` in sh with $0 = this Python and $1.. = `args`."""
    return ["sh", "-c", command, sys.executable, *map(str, args)]


def test_closed_stdout_is_one_sentence(story_args):
    outcome = run_bounded(command=shell('exec "$0" -m llama2np.cli "$@" >&-', *story_args))
    assert_refused(outcome, 1, "standard output is closed")
    assert_quiet(outcome)


def test_full_stdout_is_one_sentence(story_args):
    outcome = run_bounded(command=shell('exec "$0" -m llama2np.cli "$@" >/dev/full', *story_args))
    assert_refused(outcome, 1, "cannot write to standard output", "No space left on device")
    assert outcome.stderr.count("llama2np:") == 1
    assert_quiet(outcome)


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["generate", "--help"],
                                  ["encode", "-z", "TOK", "Hello"], ["validate", "MODEL"]])
def test_full_stdout_is_one_sentence_for_every_printing_command(model_dir, args):
    files = {"TOK": model_dir / "tok512.bin", "MODEL": model_dir / "stories260K.bin"}
    args = [files.get(arg, arg) for arg in args]
    outcome = run_bounded(command=shell('exec "$0" -m llama2np.cli "$@" >/dev/full', *args))
    assert_refused(outcome, 1, "No space left on device")
    assert outcome.stderr.count("llama2np:") == 1
    assert_quiet(outcome)


def test_reader_gone_before_the_first_token_ends_quietly(story_args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write gets EPIPE
    begun = time.monotonic()
    process = start([sys.executable, "-m", "llama2np.cli", *story_args], stdout=write_end)
    os.close(write_end)
    outcome = finish(process, begun)
    assert outcome.status == 0, outcome.stderr
    assert outcome.stderr == ""
    assert_quiet(outcome)


def test_head_reading_ten_bytes_ends_the_story_quietly(story_args):
    # The shell's view, as in `llama2np generate ... | head -c 10`: the status of the generator
    # is written to standard error after the pipeline, and nothing else is.
    outcome = run_bounded(command=shell(
        '{ "$0" -m llama2np.cli "$@" -n 0; echo "status $?" >&2; } | head -c 10', *story_args))
    assert outcome.stdout == "Once upon "
    assert outcome.stderr.endswith("status 0\n")
    assert_quiet(outcome)


def test_non_blocking_stdout_that_is_full_is_waited_for(story_args):
    # Another program (Node.js does this) may leave a shared pipe non-blocking: a write to a
    # full pipe then fails with EAGAIN instead of waiting, which must not end the story.
    expected = run_bounded(*story_args, "-t", "0").stdout
    read_end, write_end = full_pipe()
    os.set_blocking(write_end, False)  # the flag belongs to the pipe, shared with the child
    begun = time.monotonic()
    process = start([sys.executable, "-m", "llama2np.cli", *story_args, "-t", "0"],
                    stdout=write_end)
    os.close(write_end)
    wait_until_sleeping_in(process, begun, "poll", "select")  # waiting for room, not failed
    with os.fdopen(read_end, "rb") as reader:
        received = reader.read()
    outcome = finish(process, begun)
    assert outcome.status == 0, outcome.stderr
    assert received[PIPE_CAPACITY:].decode("utf-8") == expected
    assert_quiet(outcome)


def test_closed_stderr_keeps_the_story_on_stdout(story_args):
    # With descriptor 2 closed, Python has no sys.stderr, and print(..., file=sys.stderr)
    # would write the statistics line into the story.
    outcome = run_bounded(command=shell('exec "$0" -m llama2np.cli "$@" -t 0 2>&-', *story_args))
    assert outcome.status == 0
    assert outcome.stdout.startswith("Once upon a time") and "tok/s" not in outcome.stdout
    assert outcome.stderr == ""


def test_full_stderr_does_not_fail_the_story(story_args):
    outcome = run_bounded(command=shell('exec "$0" -m llama2np.cli "$@" -t 0 2>/dev/full',
                                        *story_args))
    assert outcome.status == 0
    assert outcome.stdout.startswith("Once upon a time") and "tok/s" not in outcome.stdout


# -- encodings ------------------------------------------------------------------------------

PROMPT = "Lily saw a 🐶 and said"


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"},
                                 {"PYTHONIOENCODING": "ascii:strict", "LC_ALL": "C"}])
def test_ascii_terminal_gets_the_storys_utf8_bytes(story_args, env):
    outcome = run_bounded(*story_args, "-t", "0", "-n", "40", "-i", PROMPT, env=env)
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout.startswith(PROMPT)
    assert_quiet(outcome)


def test_ascii_terminal_gets_sentences_with_escapes(model_dir):
    outcome = run_bounded("generate", "missing-🐶.bin", "-z", model_dir / "tok512.bin",
                          env={"PYTHONIOENCODING": "ascii:strict", "LC_ALL": "C"})
    assert_refused(outcome, 1, "missing-\\U0001f436.bin", "does not exist")
    assert_quiet(outcome)


# -- Ctrl+C ------------------------------------------------------------------------------------

def assert_interrupted(outcome: Outcome) -> None:
    assert outcome.status == 130, outcome.stderr
    assert outcome.stderr == "llama2np: interrupted.\n"
    assert_quiet(outcome)


# Raises SIGINT in the child at the moment NumPy's import begins (the slowest part of start-up,
# where a Ctrl+C is likeliest to land): if the package imported NumPy before main's guard, this
# would be a traceback from the console script's import line.
INTERRUPT_AT_NUMPY = """
import os, signal, sys
class InterruptAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, InterruptAtImport())
"""


def test_ctrl_c_while_numpy_loads(story_args):
    outcome = run_bounded(command=[*console_script(INTERRUPT_AT_NUMPY), *story_args])
    assert_interrupted(outcome)


# The Ctrl+C arrives while an object is being finalized (as it did, by chance, in a weak
# reference's callback inside an import): Python cannot raise a KeyboardInterrupt there and
# would print "Exception ignored" and carry on with the story.
INTERRUPT_WHILE_FINALIZING = """
import os, signal, sys
class Finalizing:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs, and raises, here
            pass
class InterruptAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            sys.meta_path.remove(self)
            Finalizing()
        return None
sys.meta_path.insert(0, InterruptAtImport())
"""


def test_ctrl_c_that_python_could_not_raise_still_ends_the_run(story_args):
    outcome = run_bounded(command=[*console_script(INTERRUPT_WHILE_FINALIZING), *story_args])
    assert_interrupted(outcome)
    assert outcome.stdout == ""  # stopped at the first token


# The Ctrl+C arrives while NumPy's C extension is being imported, which turns the
# KeyboardInterrupt into an ImportError ("numpy._core.umath failed to import"); the same
# conversion is made here in Python, around a real signal.
INTERRUPT_TURNED_INTO_IMPORT_ERROR = """
import os, signal, sys
class InterruptAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            sys.meta_path.remove(self)
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs, and raises, here
                    pass
            except KeyboardInterrupt:
                raise ImportError("numpy._core.umath failed to import") from None
        return None
sys.meta_path.insert(0, InterruptAtImport())
"""


def test_ctrl_c_turned_into_another_error_is_still_an_interrupt(story_args):
    outcome = run_bounded(command=[*console_script(INTERRUPT_TURNED_INTO_IMPORT_ERROR),
                                   *story_args])
    assert_interrupted(outcome)


# From 2 ms on: the harness's own "ready" line and the call of main() after it take a few
# microseconds, outside main's guard as the console script's `sys.exit(main())` line is.
@pytest.mark.parametrize("delay", [0.002, 0.01, 0.03, 0.1, 0.3])
def test_ctrl_c_at_moments_of_start_up(story_args, delay):
    # The story's output is a full pipe, so the run cannot end before the signal arrives: from
    # the moment main() is called, every moment of start-up (imports, parsing, reading the
    # model) and the first token's write end the same way. What comes before is Python's: the
    # interpreter's start, pip's `import re, sys`, and reading the entry point's two small
    # modules (llama2np/__init__.py and cli.py, which import only the standard library).
    ready = "sys.stderr.write('ready\\n'); sys.stderr.flush()"
    read_end, write_end = full_pipe()
    begun = time.monotonic()
    process = start([*console_script(after=ready), *story_args], stdout=write_end)
    os.close(write_end)
    assert select.select([process.stderr], [], [], TIMEOUT)[0], "the child never started"
    assert process.stderr.readline() == b"ready\n"
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    outcome = finish(process, begun)
    os.close(read_end)
    assert_interrupted(outcome)


def test_ctrl_c_mid_story(story_args):
    # Blocked writing a token to a reader that is not reading (as `llama2np generate | less`
    # paused): the model is loaded and the story under way when the signal comes.
    read_end, write_end = full_pipe()
    begun = time.monotonic()
    process = start([sys.executable, "-m", "llama2np.cli", *story_args, "-n", "0"],
                    stdout=write_end)
    os.close(write_end)
    wait_until_sleeping_in(process, begun, "pipe_write")
    process.send_signal(signal.SIGINT)
    outcome = finish(process, begun)
    os.close(read_end)
    assert_interrupted(outcome)


# -- internal errors: a bug is one line, and the traceback is there for the asking ---------------

# Replaces `encode`'s run before the parser is built (register() takes it from the module), the
# honest way to have a bug where none is known.
BUG = """
import llama2np.commands.encode as encode
def run(args):
    raise {error}
encode.run = run
"""


def buggy_encode(model_dir: Path, error: str, debug: bool) -> Outcome:
    argv = [*console_script(BUG.format(error=error)), "encode", "-z", str(model_dir / "tok512.bin"),
            "hello"]
    return run_bounded(command=["env", "LLAMA2NP_DEBUG=1", *argv] if debug else argv)


def test_internal_error_is_one_line_pointing_to_the_details(model_dir):
    outcome = buggy_encode(model_dir, "ValueError('weights out of line\\nsecond line')", False)
    sentence = assert_refused(outcome, 1, "internal error in `llama2np encode`",
                              "ValueError: weights out of line", "LLAMA2NP_DEBUG=1")
    assert "second line" not in sentence
    assert outcome.stderr == sentence + "\n"
    assert_quiet(outcome)


def test_internal_error_with_debug_shows_the_traceback(model_dir):
    outcome = buggy_encode(model_dir, "ValueError('weights out of line')", True)
    assert outcome.status == 1
    assert "Traceback (most recent call last)" in outcome.stderr
    assert "in run" in outcome.stderr and "ValueError: weights out of line" in outcome.stderr
    last = outcome.stderr.strip().splitlines()[-1]
    assert last.startswith("llama2np: internal error") and "the traceback is above" in last


def test_memory_error_is_a_sentence(model_dir):
    outcome = buggy_encode(model_dir, "MemoryError()", False)
    assert_refused(outcome, 1, "not enough memory to finish `llama2np encode`")
    assert_quiet(outcome)
