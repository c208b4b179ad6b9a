"""The straightforward NumPy port of run.c's forward pass, kept as the benchmarks' yardstick.

It is what a competent first port looks like: run.c's functions one for one, float32 weights and
activations as in run.c, one matmul per weight matrix, the RoPE rotations tabulated once, and a
Python loop over the heads as run.c loops over them. `model.Transformer` is measured against it,
so it does nothing a first port would not need (no cos/sin per call, no NumPy call for a
constant): every "x port" figure is a ratio to this code at its plain best.
"""

import math

import numpy as np

from llama2np.runtime.checkpoint import Checkpoint


def rmsnorm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x scaled to a root mean square of 1, times the learned weight (run.c's rmsnorm)."""
    scale = 1.0 / math.sqrt(float(x @ x) / len(x) + 1e-5)
    return weight * (x * scale)  # a Python float keeps float32 arrays float32


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())  # the maximum subtracted first, so that exp cannot overflow
    return e / e.sum()


def rope_tables(head_size: int, dim: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of run.c's RoPE angles, (positions, dim/2): pair i of a vector at position
    pos turns by pos * 10000^(-(2i mod head_size) / head_size). Angles in float32, as in run.c."""
    head_dim = np.arange(0, dim, 2) % head_size
    freq = np.float32(1.0) / np.power(np.float32(10000.0),
                                      head_dim.astype(np.float32) / np.float32(head_size))
    angle = np.arange(positions, dtype=np.float32)[:, None] * freq[None, :]
    return np.cos(angle), np.sin(angle)


def rope(vec: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Each adjacent pair (v0, v1) of vec rotated by its angle."""
    v0, v1 = vec[0::2], vec[1::2]
    out = np.empty_like(vec)
    out[0::2] = v0 * cos - v1 * sin
    out[1::2] = v0 * sin + v1 * cos
    return out


class BaselineTransformer:
    """run.c's Transformer: weights, a KV cache and RoPE tables for `positions` positions (the
    model's context unless fewer are asked for: the benchmark asks for the steps it runs)."""

    def __init__(self, checkpoint: Checkpoint, positions: int | None = None) -> None:
        self.config = c = checkpoint.config
        self.w = checkpoint.weights
        self.positions = c.seq_len if positions is None else min(positions, c.seq_len)
        self.key_cache = np.zeros((c.n_layers, self.positions, c.kv_dim), np.float32)
        self.value_cache = np.zeros((c.n_layers, self.positions, c.kv_dim), np.float32)
        self.cos, self.sin = rope_tables(c.head_size, c.dim, self.positions)
        self.attention_scale = 1.0 / math.sqrt(c.head_size)

    def forward(self, tokens: list[int], pos: int) -> np.ndarray:
        """Logits for each token, computed one position after another."""
        if pos < 0 or pos + len(tokens) > self.positions:
            raise ValueError(f"positions {pos}..{pos + len(tokens) - 1} are outside the "
                             f"{self.positions} this model was made for")
        return np.stack([self.step(token, pos + i) for i, token in enumerate(tokens)])

    def step(self, token: int, pos: int) -> np.ndarray:
        c, w = self.config, self.w
        hs, kv_dim = c.head_size, c.kv_dim
        kv_mul = c.n_heads // c.n_kv_heads  # query heads sharing one key/value head
        cos, sin = self.cos[pos], self.sin[pos]
        x = w.token_embedding[token].copy()
        for layer in range(c.n_layers):
            # Attention: q, k, v of this position; k and v go into the cache.
            xb = rmsnorm(x, w.rms_att[layer])
            # q carries attention's 1/sqrt(head_size), once instead of once a head.
            q = rope(w.wq[layer] @ xb, cos, sin) * self.attention_scale
            self.key_cache[layer, pos] = rope(w.wk[layer] @ xb, cos[: kv_dim // 2], sin[: kv_dim // 2])
            self.value_cache[layer, pos] = w.wv[layer] @ xb
            keys = self.key_cache[layer, : pos + 1]
            values = self.value_cache[layer, : pos + 1]
            att_out = np.empty(c.dim, np.float32)
            for h in range(c.n_heads):
                head = slice(h * hs, (h + 1) * hs)
                kv = slice((h // kv_mul) * hs, (h // kv_mul + 1) * hs)
                att = softmax(keys[:, kv] @ q[head])
                att_out[head] = att @ values[:, kv]
            x += w.wo[layer] @ att_out
            # Feed-forward: SwiGLU, w2(silu(w1 x) * w3 x).
            xb = rmsnorm(x, w.rms_ffn[layer])
            h1 = w.w1[layer] @ xb
            h3 = w.w3[layer] @ xb
            x += w.w2[layer] @ (h1 / (1.0 + np.exp(-h1)) * h3)
        return w.wcls @ rmsnorm(x, w.rms_final)
