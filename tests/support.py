"""Helpers the tests import (fixtures live in conftest.py)."""

import os
import shutil
import subprocess
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from llama2np.runtime.tokenizer import Tokenizer

GOLDEN_T0 = "expected_t0.txt"
GOLDEN_T1 = "expected_t1_p0.9_s133742.txt"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def run_cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `llama2np ARGS` in a subprocess, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "llama2np.cli", *map(str, args)],
        capture_output=True, text=True, encoding="utf-8", input=input, timeout=300,
    )


def compile_c(source: Path, folder: Path) -> Path:
    """`source` (one of tests/c) compiled into `folder`; a skip without a C compiler, except in
    CI, which must have one."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a C compiler for {source.name}")
        pytest.skip(f"no C compiler to build {source.name}")
    binary = folder / source.stem
    subprocess.run([compiler, "-O1", "-o", str(binary), str(source), "-lm"], check=True)
    return binary


def write_tokenizer(path: Path, size: int) -> None:
    """A tokenizer with `size` single-letter pieces (enough to generate from a random model)."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [bytes([97 + i % 26]) * (1 + i // 26) for i in range(size - 3)]
    scores = [-float(i) for i in range(size)]
    path.write_bytes(Tokenizer(pieces, scores, max(map(len, pieces))).to_bytes())


class QuietServer(ThreadingHTTPServer):
    """A loopback test server that does not print the clients it gave up on (tests cut
    connections on purpose; under pytest-xdist a server thread's print escapes capture)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass
