"""The straightforward NumPy port of run.c's forward pass, kept as the benchmarks' yardstick.

One token at a time, one matmul per weight matrix, a Python loop over heads, float32 like run.c.
It is what a first port looks like; `model.Transformer` is measured against it.
"""

import numpy as np

from llama2np.checkpoint import Checkpoint


def rmsnorm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    ss = np.float32(1.0) / np.sqrt(np.mean(x * x) + np.float32(1e-5))
    return weight * (ss * x)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class BaselineTransformer:
    def __init__(self, checkpoint: Checkpoint) -> None:
        self.config = c = checkpoint.config
        self.w = checkpoint.weights
        self.key_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), np.float32)
        self.value_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), np.float32)
        head_dim = np.arange(0, c.dim, 2) % c.head_size
        self.freq = np.float32(1.0) / np.power(
            np.float32(10000.0), head_dim.astype(np.float32) / np.float32(c.head_size)
        )

    def rope(self, vec: np.ndarray, pos: int) -> np.ndarray:
        angle = np.float32(pos) * self.freq[: len(vec) // 2]
        cos, sin = np.cos(angle), np.sin(angle)
        v0, v1 = vec[0::2], vec[1::2]
        out = np.empty_like(vec)
        out[0::2] = v0 * cos - v1 * sin
        out[1::2] = v0 * sin + v1 * cos
        return out

    def forward(self, tokens: list[int], pos: int) -> np.ndarray:
        """Logits for each token, computed one position after another."""
        return np.stack([self.step(token, pos + i) for i, token in enumerate(tokens)])

    def step(self, token: int, pos: int) -> np.ndarray:
        c, w = self.config, self.w
        hs = c.head_size
        kv_mul = c.n_heads // c.n_kv_heads
        x = w.token_embedding[token].copy()
        for layer in range(c.n_layers):
            xb = rmsnorm(x, w.rms_att[layer])
            q = self.rope(w.wq[layer] @ xb, pos)
            self.key_cache[layer, pos] = self.rope(w.wk[layer] @ xb, pos)
            self.value_cache[layer, pos] = w.wv[layer] @ xb
            att_out = np.empty(c.dim, np.float32)
            for h in range(c.n_heads):
                kv = (h // kv_mul) * hs
                keys = self.key_cache[layer, : pos + 1, kv : kv + hs]
                att = softmax(keys @ q[h * hs : (h + 1) * hs] / np.sqrt(np.float32(hs)))
                att_out[h * hs : (h + 1) * hs] = att @ self.value_cache[layer, : pos + 1, kv : kv + hs]
            x += w.wo[layer] @ att_out
            xb = rmsnorm(x, w.rms_ffn[layer])
            h1 = w.w1[layer] @ xb
            h3 = w.w3[layer] @ xb
            x += w.w2[layer] @ (h1 * (np.float32(1.0) / (np.float32(1.0) + np.exp(-h1))) * h3)
        return w.wcls @ rmsnorm(x, w.rms_final)
