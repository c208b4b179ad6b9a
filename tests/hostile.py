"""Running `llama2np` on hostile input: in a subprocess bounded in memory and time, with what a
test needs to check that it refused cleanly and touched nothing it should not have."""

import hashlib
import os
import resource
import subprocess
import sys
import threading
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


def run_bounded(*args: object, cwd: Path | None = None, input: bytes | None = None,
                env: dict | None = None, memory_mb: int = MEMORY_LIMIT_MB,
                timeout: float = TIME_LIMIT_SECONDS, command: list[str] | None = None) -> Outcome:
    """Run `llama2np ARGS` (or `command`) with its address space capped at `memory_mb` and a
    wall-clock limit; a run that hits the limit fails the test through TimeoutExpired."""

    def limit() -> None:
        limit_bytes = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    full_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    full_env.pop("LLAMA2NP_DEBUG", None)
    argv = command or [sys.executable, "-m", "llama2np.cli", *map(str, args)]
    start = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=full_env, preexec_fn=limit,
                               stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    output: dict[str, bytes] = {}

    def drain(name: str, stream: object) -> None:
        output[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(name, stream), daemon=True)
               for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))]
    for reader in readers:
        reader.start()
    if input is not None:
        try:
            process.stdin.write(input)
            process.stdin.close()
        except BrokenPipeError:
            pass
    # wait4 reaps this very child and reports its own peak resident set (RUSAGE_CHILDREN would
    # give the largest of every child this test process ever had).
    deadline = start + timeout
    while True:
        pid, wait_status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise subprocess.TimeoutExpired(argv, timeout)
        time.sleep(0.01)
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    for reader in readers:
        reader.join()
    return Outcome(process.returncode, output["stdout"].decode("utf-8", "replace"),
                   output["stderr"].decode("utf-8", "replace"), usage.ru_maxrss / 1024,
                   time.monotonic() - start)


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
