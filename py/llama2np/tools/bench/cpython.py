"""The benchmark on this CPython: the runtime and the straightforward port in one process."""

import platform
from pathlib import Path

from llama2np.runtime.benchmark import measure
from llama2np.runtime.checkpoint import load_checkpoint
from llama2np.tools.bench.table import format_table
from llama2np.tools.models.fetch import fetch
from llama2np.tools.paths import DEFAULT_MODEL_DIR


def bench_cpython(checkpoint: Path | None, steps: int, prompt_tokens: int, repeats: int) -> str:
    """The table for `checkpoint` (default: stories260K, fetched if needed)."""
    if checkpoint is None:
        checkpoint = fetch(DEFAULT_MODEL_DIR, quiet=True) / "stories260K.bin"
    results = measure(load_checkpoint(checkpoint), steps, prompt_tokens, repeats,
                      name=checkpoint.name)
    where = f"CPython {platform.python_version()} on {platform.machine()}, {platform.node() or 'this machine'}"
    return format_table(results, f"{checkpoint.name}, {where}")

