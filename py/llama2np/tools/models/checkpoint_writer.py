"""Writing llama2.c checkpoints: version 0 (legacy), 1 (fp32) and 2 (Q8_0), as llama2.c's export.py
lays them out, so that run.c, runq.c and the runtime's reader all take them."""


import io
from typing import BinaryIO

import numpy as np

from llama2np.runtime.checkpoint import (
    EXPORT_HEADER_SIZE,
    EXPORT_MATRICES,
    EXPORT_PREFIX,
    GROUP_SIZE,
    LEGACY_HEADER,
    LEGACY_ORDER,
    MAGIC,
    NORMS,
    Checkpoint,
    Config,
)
from llama2np.runtime.errors import Llama2npError, UsageError

DEFAULT_GROUP_SIZE = 64  # llama2.c's default for version 2
# Version 0 stores RoPE tables of seq_len positions, which a real model's context keeps far below
# its weights (stories110M: 256 KB beside 418 MB); tables beyond the weights plus this are a
# header's claim, not a model, and are refused rather than written to memory and disk.
ROPE_TABLES_ALLOWANCE = 64 << 20


def write_checkpoint(checkpoint: Checkpoint, version: int, group_size: int = DEFAULT_GROUP_SIZE) -> bytes:
    """The bytes of `checkpoint` in llama2.c format `version` (0, 1 or 2)."""
    out = io.BytesIO()
    write_checkpoint_into(out, checkpoint, version, group_size)
    return out.getvalue()


def write_checkpoint_into(out: BinaryIO, checkpoint: Checkpoint, version: int,
                          group_size: int = DEFAULT_GROUP_SIZE) -> None:
    """Write `checkpoint` to `out` in llama2.c format `version`, a tensor at a time and, for
    Q8_0, a few thousand rows at a time: memory stays near the model's own, never a copy of it."""
    if version == 0:
        return write_legacy(out, checkpoint)
    if version == 1:
        return write_export(out, checkpoint, 1)
    if version == 2:
        return write_export(out, checkpoint, 2, fitting_group_size(checkpoint.config, group_size))
    raise UsageError(f"version {version} is not a llama2.c checkpoint version; use 0, 1 or 2.")


def config_ints(c: Config, vocab_size: int) -> tuple[int, ...]:
    return c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, vocab_size, c.seq_len


def fp32(array: np.ndarray) -> memoryview:
    """The array's float32 little-endian bytes: a view of the array itself when it already is
    one (every machine llama2.c runs on), else a copy."""
    return memoryview(np.ascontiguousarray(array, dtype="<f4")).cast("B")


def rope_tables(c: Config) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of position * frequency, (seq_len, head_size / 2) each, as llama2.c's
    model.py precomputes them; run.c skips them, but the legacy format has room for them.

    The frequencies and angles are model.py's float32 arithmetic; cos and sin are taken in
    float64 and rounded once, so each value is the float32 nearest the true one (PyTorch's own
    float32 cos and sin are within one unit in the last place of it)."""
    half = c.head_size // 2
    exponents = np.arange(0, c.head_size, 2)[:half].astype(np.float32) / np.float32(c.head_size)
    freqs = np.float32(1.0) / np.power(np.float32(10000.0), exponents, dtype=np.float32)
    angles = np.outer(np.arange(c.seq_len, dtype=np.float32), freqs).astype(np.float32)
    wide = angles.astype(np.float64)
    return np.cos(wide).astype(np.float32), np.sin(wide).astype(np.float32)


def write_legacy(out: BinaryIO, checkpoint: Checkpoint) -> None:
    c, w = checkpoint.config, checkpoint.weights
    tables = 4 * c.seq_len * c.head_size
    weights = sum(getattr(w, key).nbytes for key in LEGACY_ORDER)
    if tables > weights + ROPE_TABLES_ALLOWANCE:
        raise Llama2npError(f"version 0 stores RoPE tables for the whole context, and this "
                            f"model's context of {c.seq_len:,} positions would take "
                            f"{tables / 1e9:,.2f} GB of them; export --version 1 or 2, which "
                            "store none, or check the model's seq_len.")
    # run.c's convention: a negative vocabulary size says the classifier follows the tables.
    vocab = c.vocab_size if checkpoint.shared_classifier else -c.vocab_size
    out.write(LEGACY_HEADER.pack(*config_ints(c, vocab)))
    for key in LEGACY_ORDER:
        out.write(fp32(getattr(w, key)))
    # A version-0 input's own tables are copied: a round trip gives back the very file.
    for table in checkpoint.rope_tables or rope_tables(c):
        out.write(fp32(table))
    if not checkpoint.shared_classifier:
        out.write(fp32(w.wcls))


def export_header(checkpoint: Checkpoint, version: int, group_size: int | None) -> bytes:
    c = checkpoint.config
    header = EXPORT_PREFIX.pack(MAGIC, version, *config_ints(c, c.vocab_size),
                                int(checkpoint.shared_classifier))
    if version == 2:
        header += GROUP_SIZE.pack(group_size)
    return header.ljust(EXPORT_HEADER_SIZE, b"\0")


def write_export(out: BinaryIO, checkpoint: Checkpoint, version: int,
                 group_size: int | None = None) -> None:
    w = checkpoint.weights
    out.write(export_header(checkpoint, version, group_size))
    for key in NORMS:
        out.write(fp32(getattr(w, key)))
    matrices = list(EXPORT_MATRICES) + ([] if checkpoint.shared_classifier else ["wcls"])
    for key in matrices:
        tensor = getattr(w, key)
        for matrix in (tensor if tensor.ndim == 3 else tensor[None]):
            if version == 1:
                out.write(fp32(matrix))
            else:
                write_q8_0(out, matrix, group_size)


# Rows of a matrix quantised at once: a group never spans two rows (the group size divides
# every row length), so a matrix goes through in slices of this many values' worth of rows.
Q8_0_SLICE_VALUES = 1 << 20


def write_q8_0(out: BinaryIO, matrix: np.ndarray, group_size: int) -> None:
    """A matrix as Q8_0: all its int8 values, then one float32 scale per group."""
    rows = max(1, Q8_0_SLICE_VALUES // matrix.shape[-1])
    scales = []
    for start in range(0, matrix.shape[0], rows):
        quantized, slice_scales = quantize_q8_0(matrix[start : start + rows], group_size)
        out.write(memoryview(quantized).cast("B"))
        scales.append(slice_scales)
    out.write(fp32(np.concatenate(scales)))


def quantize_q8_0(values: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 in groups: scale = max|w| / 127 per group, q = round(w / scale)."""
    groups = values.astype(np.float32).reshape(-1, group_size)
    scales = np.abs(groups).max(axis=1) / np.float32(127.0)
    safe = np.where(scales == 0, np.float32(1.0), scales)  # an all-zero group stays zero
    quantized = np.round(groups / safe[:, None]).astype(np.int8)
    return quantized.reshape(-1), scales.astype(np.float32)


def fitting_group_size(c: Config, group_size: int) -> int:
    """Halve the group size until it divides every quantised row length, dim and hidden_dim, so
    that no group spans two rows: llama2.c's quantised runner (runq.c) groups each row of a
    matrix product on its own. (llama2.c's export.py checks dim only, and writes files that
    runq.c misreads when hidden_dim is not a multiple.) 1 divides any width."""
    if group_size <= 0:
        raise UsageError(f"group size {group_size} must be positive.")
    while c.dim % group_size or c.hidden_dim % group_size:
        group_size //= 2
    return group_size
