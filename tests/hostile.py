"""Running `llama2np` on hostile input: in a subprocess bounded in memory and time, with what a
test needs to check that it refused cleanly and touched nothing it should not have."""

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Address space a command may use: Python, NumPy (one BLAS thread) and the stories260K model need
# about 200 MB; a command that believed a header's sizes would need gigabytes.
MEMORY_LIMIT_MB = 768
TIME_LIMIT_SECONDS = 60.0


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    peak_rss_mb: float  # the child's own peak resident set
    seconds: float


# A small Python between the test and the command: it caps the address space, starts the
# command, passes SIGINT and SIGTERM on, and reports the command's own peak resident set. (The
# peak that wait4 reports for a child starts at the resident set of the process that forked it,
# so a child forked straight from a large pytest process would seem to use pytest's memory.)
LAUNCHER = """
import os, resource, signal, sys
limit, report, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
child = os.fork()
if child == 0:
    os.execvp(argv[0], argv)
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda number, frame: os.kill(child, number))
_, status, usage = os.wait4(child, 0)
with open(report, "w") as out:
    out.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_bounded(*args: object, cwd: Path | None = None, input: bytes | None = None,
                env: dict | None = None, memory_mb: int = MEMORY_LIMIT_MB,
                timeout: float = TIME_LIMIT_SECONDS, command: list[str] | None = None) -> Outcome:
    """Run `llama2np ARGS` (or `command`) with its address space capped at `memory_mb` and a
    wall-clock limit; a run that hits the limit fails the test through TimeoutExpired."""
    full_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    full_env.pop("LLAMA2NP_DEBUG", None)
    argv = command or [sys.executable, "-m", "llama2np.cli", *map(str, args)]
    with tempfile.TemporaryDirectory(prefix="llama2np-bounded-") as scratch:
        report = Path(scratch) / "peak-kb"
        launcher = [sys.executable, "-c", LAUNCHER, str(memory_mb << 20), str(report), *argv]
        start = time.monotonic()
        try:
            result = subprocess.run(launcher, cwd=cwd, env=full_env, input=input,
                                    stdin=None if input is not None else subprocess.DEVNULL,
                                    capture_output=True, timeout=timeout)
        finally:
            seconds = time.monotonic() - start
        peak_kb = int(report.read_text()) if report.is_file() else 0
    return Outcome(result.returncode, result.stdout.decode("utf-8", "replace"),
                   result.stderr.decode("utf-8", "replace"), peak_kb / 1024, seconds)


def assert_refused(outcome: Outcome, status: int, *phrases: str) -> str:
    """The command ended with `status` and, as its last word on standard error, one sentence
    (`llama2np: ...`) holding every phrase; never a traceback. Returns the sentence."""
    assert outcome.status == status, (outcome.status, outcome.stdout[-500:], outcome.stderr[-2000:])
    assert "Traceback" not in outcome.stderr, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert lines, "nothing on standard error"
    sentence = lines[-1]
    assert sentence.startswith("llama2np: "), sentence
    assert len(sentence) < 600, sentence
    for phrase in phrases:
        assert phrase in sentence, sentence
    return sentence


def folder_state(folder: Path) -> dict[str, str]:
    """Every entry below `folder` with a fingerprint of what it is: a file's sha256, a link's
    target, 'dir' for a folder; compare two of them to prove nothing was touched."""
    state = {}
    for path in sorted(Path(folder).rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = "link:" + os.readlink(path)
        elif path.is_dir():
            state[key] = "dir"
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "special"
    return state
