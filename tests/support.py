"""Helpers the tests import (fixtures live in conftest.py)."""

import subprocess
import sys

GOLDEN_T0 = "expected_t0.txt"
GOLDEN_T1 = "expected_t1_p0.9_s133742.txt"


def run_cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `llama2np ARGS` in a subprocess, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "llama2np.cli", *map(str, args)],
        capture_output=True, text=True, encoding="utf-8", input=input, timeout=300,
    )
