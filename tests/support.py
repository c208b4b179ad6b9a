"""Helpers the tests import (fixtures live in conftest.py)."""

import subprocess
import sys
from pathlib import Path

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


def write_tokenizer(path: Path, size: int) -> None:
    """A tokenizer with `size` single-letter pieces (enough to generate from a random model)."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [bytes([97 + i % 26]) * (1 + i // 26) for i in range(size - 3)]
    scores = [-float(i) for i in range(size)]
    path.write_bytes(Tokenizer(pieces, scores, max(map(len, pieces))).to_bytes())
