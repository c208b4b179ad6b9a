"""The float32 engine for models from stories15M's size up: run.c's arithmetic on the checkpoint's
own arrays, where the weights, not NumPy's calls, set the pace.

A token of such a model is millions of multiply-adds, each weight read once from memory, so the
float64 engine's copies and fused matrices (fused.py) would cost ten times the checkpoint's
memory and buy nothing. Here nothing is copied, fused or widened: each product reads llama2.c's
(out, in) rows where the file put them, all heads of a layer at once.
"""

import math
import sys

import numpy as np

from llama2np.runtime.checkpoint import Checkpoint, Config
from llama2np.runtime.model.rope import rope_rotations, rotate
from llama2np.runtime.model.transformer import EPS, FIRST_POSITIONS, Transformer


# Matrix (out, in) times vector into a buffer, and a batch of rows (T, in) times its transpose.
# With BLAS (CPython) matmul is one gemv or gemm over llama2.c's rows, as the straightforward
# port's `W @ x`. Without BLAS (Pyodide 0.27.7, stories15M's matrices, Node's V8) einsum's
# dot-product loop measured 0.39-0.53 ns a multiply-add, matmul 0.8-1.7, ndarray.dot 0.9-2.1,
# and matmul over a contiguous transposed copy 0.85-2.1; a 64-row batch by einsum 0.40, by
# matmul 0.87. float64 is no faster there (0.41-0.47 by einsum) and twice the memory.
def einsum_matvec(w: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.einsum("ij,j->i", w, x, out=out)


def einsum_matmat(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.einsum("tj,ij->ti", x, w)


def blas_matvec(w: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.matmul(w, x, out=out)


def blas_matmat(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w.T


if sys.platform == "emscripten":
    matvec, matmat = einsum_matvec, einsum_matmat
else:
    matvec, matmat = blas_matvec, blas_matmat

# Rows of the classifier whose norms are summed at a time for `logit_bound`, so the float64
# squares never take more than a few megabytes.
BOUND_ROWS = 2048


def classifier_bound(wcls: np.ndarray, rms_final: np.ndarray, dim: int) -> float:
    """A bound on |logit|: logits are wcls @ (rms_final * u) with |u| < sqrt(dim) (RMSNorm), so
    none exceeds max row norm x max |rms_final| x sqrt(dim); 1% added for float32 rounding."""
    longest = 0.0
    for start in range(0, len(wcls), BOUND_ROWS):
        rows = wcls[start : start + BOUND_ROWS].astype(np.float64)
        longest = max(longest, float(np.einsum("ij,ij->i", rows, rows).max()))
    return 1.01 * math.sqrt(longest) * float(np.abs(rms_final).max()) * math.sqrt(dim)


class Float32Transformer(Transformer):
    """run.c's float32 forward pass on the checkpoint's own arrays.

    Nothing is fused or copied: each product reads llama2.c's (out, in) rows where the file put
    them, so memory is the checkpoint, the KV cache (grown with the story) and a few vectors.
    Each step does what the straightforward port (`baseline.py`) does, in its order and
    precision, with all heads of a layer in one product instead of a loop; a batch (a prompt)
    does the same with matrix products.
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        c = self.config = checkpoint.config
        self.weights = w = checkpoint.weights
        self.group = c.n_heads // c.n_kv_heads
        # Python float, as the port: multiplying float32 by it stays float32.
        self.attention_scale = 1.0 / math.sqrt(c.head_size)
        with np.errstate(all="ignore"):  # broken weights: the sampler says so in a sentence
            self.logit_bound = classifier_bound(w.wcls, w.rms_final, c.dim)
        self._make_step_buffers()
        self.keys: list[np.ndarray] = []  # per layer, (positions, n_kv_heads, head_size)
        self.values: list[np.ndarray] = []
        self.reserve(FIRST_POSITIONS)

    def _grow(self, positions: int) -> None:
        """The caches, the RoPE table and the score buffer for `positions` (see reserve)."""
        c = self.config
        # run.c's float32 cos and sin, held exactly as complex64: pair i turns by its head's angle.
        self.rotations = rope_rotations(c, positions)[0].astype(np.complex64)
        self._scores = np.empty((c.n_kv_heads, self.group, positions), np.float32)
        shape = (positions, c.n_kv_heads, c.head_size)
        for cache in (self.keys, self.values):
            for index in range(c.n_layers):
                grown = np.zeros(shape, np.float32)
                if index < len(cache):
                    grown[: self.positions] = cache[index]
                    cache[index] = grown
                else:
                    cache.append(grown)

    @staticmethod
    def memory_bytes(config: Config, positions: int) -> int:
        """Per position: each layer's float32 keys and values, the RoPE table's rotations and a
        score for each head."""
        c = config
        return positions * (2 * c.n_layers * c.kv_dim * 4 + 8 * (c.dim // 2) + 4 * c.n_heads)

    def _make_step_buffers(self) -> None:
        c = self.config
        self._x = np.empty(c.dim, np.float32)
        self._xn = np.empty(c.dim, np.float32)
        self._delta = np.empty(c.dim, np.float32)
        self._q = np.empty(c.dim, np.float32)
        self._q_heads = self._q.reshape(c.n_kv_heads, self.group, c.head_size)
        self._att = np.empty(c.dim, np.float32)
        self._att_heads = self._att.reshape(c.n_kv_heads, self.group, c.head_size)
        self._sums = np.empty((c.n_kv_heads, self.group, 1), np.float32)
        self._h1 = np.empty(c.hidden_dim, np.float32)
        self._h3 = np.empty(c.hidden_dim, np.float32)
        self._gate = np.empty(c.hidden_dim, np.float32)

    def step(self, token: int, pos: int) -> np.ndarray:
        """Logits (vocab_size,) of one token at `pos`, float32 as run.c's."""
        c, w = self.config, self.weights
        self.check_position(pos)
        end, half_kv = pos + 1, c.kv_dim // 2
        x, xn, delta, q, q_heads = self._x, self._xn, self._delta, self._q, self._q_heads
        att, att_heads, sums, h1, h3, gate = (self._att, self._att_heads, self._sums, self._h1,
                                              self._h3, self._gate)
        rotations, scores = self.rotations[pos], self._scores[..., :end]
        with np.errstate(all="ignore"):  # NaN from broken weights reaches the sampler
            np.copyto(x, w.token_embedding[token])
            for layer in range(c.n_layers):
                rmsnorm_into(x, w.rms_att[layer], xn)
                matvec(w.wq[layer], xn, q)
                rotate(q, rotations)
                q *= self.attention_scale
                key = self.keys[layer][pos].reshape(-1)
                matvec(w.wk[layer], xn, key)
                rotate(key, rotations[:half_kv])
                matvec(w.wv[layer], xn, self.values[layer][pos].reshape(-1))
                # All heads at once: (n_kv, group, hs) @ (n_kv, hs, end), then the softmax.
                np.matmul(q_heads, self.keys[layer][:end].transpose(1, 2, 0), out=scores)
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                np.sum(scores, axis=-1, keepdims=True, out=sums)
                scores /= sums
                np.matmul(scores, self.values[layer][:end].transpose(1, 0, 2), out=att_heads)
                matvec(w.wo[layer], att, delta)
                x += delta
                # Feed-forward: w2(silu(w1 xn) * w3 xn), silu(h) = h / (1 + e^-h).
                rmsnorm_into(x, w.rms_ffn[layer], xn)
                matvec(w.w1[layer], xn, h1)
                matvec(w.w3[layer], xn, h3)
                np.negative(h1, out=gate)
                np.exp(gate, out=gate)
                gate += 1.0
                np.divide(h1, gate, out=gate)
                gate *= h3
                matvec(w.w2[layer], gate, delta)
                x += delta
            rmsnorm_into(x, w.rms_final, xn)
            return matvec(w.wcls, xn, np.empty(c.vocab_size, np.float32))

    def _batch(self, tokens: list[int] | np.ndarray, pos: int, end: int) -> np.ndarray:
        """Logits (T, vocab_size) for T > 1 tokens, each product one matrix product for the
        batch: what `step` computes, up to float32 rounding."""
        c, w, T = self.config, self.weights, end - pos
        hs, n_kv, half_kv = c.head_size, c.n_kv_heads, c.kv_dim // 2
        rotations = self.rotations[pos:end]
        with np.errstate(all="ignore"):
            x = w.token_embedding[tokens]
            mask = self.causal_mask(pos, end).astype(np.float32)
            for layer in range(c.n_layers):
                xn = rmsnorm_rows(x, w.rms_att[layer])
                q = matmat(xn, w.wq[layer])
                rotate(q, rotations)
                q *= self.attention_scale
                keys = matmat(xn, w.wk[layer])
                rotate(keys, rotations[:, :half_kv])
                self.keys[layer][pos:end] = keys.reshape(T, n_kv, hs)
                self.values[layer][pos:end] = matmat(xn, w.wv[layer]).reshape(T, n_kv, hs)
                q = self.group_queries(q)
                scores = q @ self.keys[layer][:end].transpose(1, 2, 0) + mask
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=-1, keepdims=True)
                att = scores @ self.values[layer][:end].transpose(1, 0, 2)
                att = self.ungroup(att)
                x += matmat(att, w.wo[layer])
                xn = rmsnorm_rows(x, w.rms_ffn[layer])
                h1 = matmat(xn, w.w1[layer])
                gate = np.exp(-h1)
                gate += 1.0
                np.divide(h1, gate, out=gate)
                gate *= matmat(xn, w.w3[layer])
                x += matmat(gate, w.w2[layer])
            return matmat(rmsnorm_rows(x, w.rms_final), w.wcls)


def rmsnorm_into(x: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:
    """run.c's rmsnorm of one float32 vector: weight * (x / rms(x)), the scale in double."""
    np.multiply(x, 1.0 / math.sqrt(float(x.dot(x)) / len(x) + EPS), out=out)
    out *= weight


def rmsnorm_rows(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """`rmsnorm_into` for each row of a float32 batch (T, dim)."""
    scale = 1.0 / np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64) / x.shape[1] + EPS)
    return weight * (x * scale.astype(np.float32)[:, None])
