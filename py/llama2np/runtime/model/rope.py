"""RoPE's rotations as complex numbers: each adjacent pair of a query or key is one complex
number, and turning it by its angle is one complex multiply."""

import numpy as np

from llama2np.runtime.checkpoint import Config


def rotate(pairs: np.ndarray, rotations: np.ndarray) -> None:
    """RoPE in place: each adjacent pair of `pairs` (float32) is a complex number, turned by
    multiplying it with its rotation."""
    as_complex = pairs.view(np.complex64)
    np.multiply(as_complex, rotations, out=as_complex)


def rope_rotations(config: Config, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """e^(i * pos * freq) for pos < positions: for q's pairs (positions, dim/2), and for each
    key/value head's k pairs followed by ones for its v pairs (positions, n_kv, head_size).

    The angles are computed in float32 as run.c computes them, each on its own, so the rotations
    are run.c's whatever the table's length. Parts are float64, which holds float32 exactly.
    """
    hs = config.head_size
    freq = np.float32(1.0) / np.power(
        np.float32(10000.0), np.arange(0, hs, 2, dtype=np.float32) / np.float32(hs)
    )
    angle = np.arange(positions, dtype=np.float32)[:, None] * freq[None, :]
    per_head = np.cos(angle).astype(np.float64) + 1j * np.sin(angle).astype(np.float64)  # (seq, hs/2)
    q = np.tile(per_head, (1, config.n_heads))
    kv = np.concatenate([per_head, np.ones_like(per_head)], axis=1)
    return q, np.repeat(kv[:, None, :], config.n_kv_heads, axis=1)
