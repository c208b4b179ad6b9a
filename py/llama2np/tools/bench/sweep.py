"""The benchmark over llama2.c's model sizes (`llama2np bench --shapes 260K,15M,42M,110M`).

stories260K is the real model; 15M, 42M and 110M are checkpoints of their shapes with weights
from a fixed seed (see `tools/models/synthetic.py`), written to a temporary folder for the run.
For each: the runtime's and the port's decode and prompt speed (`benchmark.measure`, greedy),
the time to read the checkpoint and make the model, and the peak resident set of a
`llama2np generate` run of the whole context in a process of its own, beside the goal of
1.5x the checkpoint + 100 MB.
"""

import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llama2np.runtime.benchmark import PLAIN, PORT, measure
from llama2np.runtime.checkpoint import load_checkpoint, parameter_count
from llama2np.runtime.errors import UsageError
from llama2np.runtime.model import make_model
from llama2np.tools.bench.table import format_sweep
from llama2np.tools.models.fetch import fetch
from llama2np.tools.models.synthetic import (
    SHAPES,
    synthetic_tokenizer_bytes,
    write_synthetic_checkpoint,
)
from llama2np.tools.paths import DEFAULT_MODEL_DIR

DEMO = "260K"
ALL_SHAPES = (DEMO, *SHAPES)
# A tiny Python between the bench and the measured command: the peak that wait4 reports for a
# child starts at the resident set of the process that forked it, so the bench (holding the
# models it measured) must not fork the command itself.
LAUNCHER = """
import os, sys
child = os.fork()
if child == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(child, 0)
print(usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def parse_shapes(text: str) -> list[str]:
    """'260K,15M' -> ['260K', '15M']; 'all' is every shape."""
    if text.strip() == "all":
        return list(ALL_SHAPES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL_SHAPES]
    if unknown or not names:
        raise UsageError(f"--shapes {text!r} names no known shape; use a comma-separated list "
                         f"of {', '.join(ALL_SHAPES)}, or all.")
    return names


def peak_rss_mb(argv: list[str]) -> float:
    """The peak resident set of `argv` run to its end, in MiB (its output is discarded)."""
    result = subprocess.run([sys.executable, "-c", LAUNCHER, *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            check=False)
    if result.returncode:
        raise UsageError(f"the memory run failed: {result.stderr.strip()[-400:]}")
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def measure_shape(name: str, checkpoint: Path, tokenizer: Path, steps: int,
                  prompt_tokens: int, repeats: int) -> dict:
    start = time.perf_counter()
    model = load_checkpoint(checkpoint)
    engine = type(make_model(model)).__name__
    load = time.perf_counter() - start
    c = model.config
    # One length for shapes of different contexts: each is measured within its own.
    results = measure(model, min(steps, c.seq_len), min(prompt_tokens, c.seq_len - 1), repeats,
                      (PLAIN, PORT), name)
    generate = [sys.executable, "-m", "llama2np.cli", "generate", str(checkpoint), "-z",
                str(tokenizer), "-t", "1", "-s", "1", "-n", str(c.seq_len)]
    size = checkpoint.stat().st_size
    return {"shape": name, "engine": engine, "parameters": parameter_count(model), "bytes": size,
            "load_seconds": load, "peak_mb": peak_rss_mb(generate),
            "bound_mb": 1.5 * size / 2**20 + 100, "results": results}


def sweep(shapes: list[str], steps: int, prompt_tokens: int, repeats: int) -> str:
    rows = []
    with tempfile.TemporaryDirectory(prefix="llama2np-sweep-") as scratch:
        tokenizer = Path(scratch) / "tokenizer.bin"
        tokenizer.write_bytes(synthetic_tokenizer_bytes(32000))
        for name in shapes:
            if name == DEMO:
                folder = fetch(DEFAULT_MODEL_DIR, quiet=True)
                rows.append(measure_shape(name, folder / "stories260K.bin", folder / "tok512.bin",
                                          steps, prompt_tokens, repeats))
                continue
            path = write_synthetic_checkpoint(Path(scratch) / f"stories{name}.bin", SHAPES[name])
            rows.append(measure_shape(name, path, tokenizer, steps, prompt_tokens, repeats))
            path.unlink()
    where = f"CPython {platform.python_version()} on {platform.machine()}"
    return format_sweep(rows, f"llama2np bench --shapes, {where}, {steps} decode steps, "
                              f"{prompt_tokens}-token prompt, best of {repeats}")

