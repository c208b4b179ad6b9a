"""The benchmark on this CPython: the runtime and the straightforward port in one process."""

import platform
from pathlib import Path

from llama2np.benchmark import measure
from llama2np.checkpoint import load_checkpoint
from llama2np.errors import UsageError
from llama2np.tools.bench.table import format_table
from llama2np.tools.models.fetch import fetch
from llama2np.tools.paths import DEFAULT_MODEL_DIR


def bench_cpython(checkpoint: Path | None, steps: int, prompt_tokens: int, repeats: int) -> str:
    """The table for `checkpoint` (default: stories260K, fetched if needed)."""
    if checkpoint is None:
        checkpoint = fetch(DEFAULT_MODEL_DIR, quiet=True) / "stories260K.bin"
    model = load_checkpoint(checkpoint)
    check_lengths(checkpoint.name, model.config.seq_len, steps, prompt_tokens)
    results = measure(model, steps, prompt_tokens, repeats)
    where = f"CPython {platform.python_version()} on {platform.machine()}, {platform.node() or 'this machine'}"
    return format_table(results, f"{checkpoint.name}, {where}")


def check_lengths(name: str, seq_len: int, steps: int, prompt_tokens: int) -> None:
    """Refuse lengths the model's context cannot hold, before anything is measured: the decode
    run forwards `steps` positions, the prompt run the prompt and one token after it."""
    if steps > seq_len:
        raise UsageError(f"steps {steps} is beyond the {seq_len}-token context of {name}; "
                         f"use -n {seq_len} or fewer.")
    if prompt_tokens >= seq_len:
        raise UsageError(f"prompt tokens {prompt_tokens} leave no room to generate in the "
                         f"{seq_len}-token context of {name}; use --prompt-tokens {seq_len - 1} "
                         "or fewer.")
