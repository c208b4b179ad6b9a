"""The Llama-2 forward pass, shaped for NumPy's per-call cost rather than its arithmetic.

stories260K needs about half a million multiply-adds a token, which NumPy does in microseconds;
what costs is the number of NumPy calls, each several microseconds under Pyodide. So the forward
pass works on a batch of T tokens at once (the whole prompt, or one token while decoding) and per
layer does:

    x (T, dim) ── rmsnorm ── @ Wqkv ──> q k v      one matmul: norm weight and 1/sqrt(head_size)
                                                   folded into the rows
    q, k ── RoPE ──> one complex multiply          (adjacent pairs are complex numbers)
    k, v ──> KV cache row pos..pos+T-1
    attention: all heads at once                   (n_kv, T, group, t) scores, one softmax;
                                                   values carry a column of ones, so one matmul
                                                   gives both the weighted sum and its normaliser
    x += att @ Wo
    x += (silu(h1) * h3) @ W2,  h1|h3 = rmsnorm(x) @ W13   (gate and up in one matmul)

Arithmetic is float64: results then do not depend on how BLAS blocks a (T, n) product, so a
batch of T tokens gives the same logits as T single steps, which speculative decoding needs, and
the float32 sampler sees run.c's values.
"""

from dataclasses import dataclass

import numpy as np

from llama2np.checkpoint import Checkpoint, Config

DTYPE = np.float64
EPS = 1e-5  # RMSNorm's epsilon, as in llama2.c


@dataclass
class Layer:
    """One transformer block's fused weights, as (in, out) views of (out, in) rows, so that every
    product is x @ W and each output sums over a contiguous row. NumPy without BLAS (Pyodide)
    then runs its dot-product loop, up to 1.7x faster than walking a column; BLAS does not care.
    """

    wqkv: np.ndarray  # (dim, dim + 2 * kv_dim): q (scaled), k, v; attention norm folded in
    wo: np.ndarray  # (dim, dim)
    w13: np.ndarray  # (dim, 2 * hidden_dim): gate (-w1) then up (w3); ffn norm folded in
    w2: np.ndarray  # (hidden_dim, dim), negated


def rope_rotations(config: Config) -> np.ndarray:
    """e^(i * pos * freq) for every position and every complex pair of q then k: (seq_len, pairs).

    The angles are computed in float32 as run.c computes them, so the rotations are run.c's.
    """
    hs = config.head_size
    head_dim = np.arange(0, config.dim + config.kv_dim, 2) % hs
    freq = np.float32(1.0) / np.power(np.float32(10000.0), head_dim.astype(np.float32) / np.float32(hs))
    angle = np.arange(config.seq_len, dtype=np.float32)[:, None] * freq[None, :]
    return np.cos(angle).astype(DTYPE) + 1j * np.sin(angle).astype(DTYPE)


def fuse_layer(checkpoint: Checkpoint, layer: int) -> Layer:
    w, c = checkpoint.weights, checkpoint.config

    def f64(array: np.ndarray) -> np.ndarray:
        return array.astype(DTYPE)

    def norm(weight: np.ndarray) -> np.ndarray:
        return f64(weight) * np.sqrt(c.dim)  # see rmsnorm()

    q_scale = 1.0 / np.sqrt(c.head_size)  # attention's 1/sqrt(head_size), applied to q once
    wqkv = np.concatenate([f64(w.wq[layer]) * q_scale, f64(w.wk[layer]), f64(w.wv[layer])])
    w13 = np.concatenate([-f64(w.w1[layer]), f64(w.w3[layer])])  # see silu_gate()
    return Layer(
        wqkv=np.asfortranarray((wqkv * norm(w.rms_att[layer])).T),
        wo=np.asfortranarray(f64(w.wo[layer]).T),
        w13=np.asfortranarray((w13 * norm(w.rms_ffn[layer])).T),
        w2=np.asfortranarray(-f64(w.w2[layer]).T),
    )


def rmsnorm(x: np.ndarray) -> np.ndarray:
    """x / sqrt(sum(x^2) + dim * eps) per row, which is RMSNorm divided by sqrt(dim).

    The sqrt(dim), like the learned weight, is folded into the next matmul's rows; that saves
    NumPy calls, the currency here.
    """
    return x / np.sqrt(np.add.reduce(x * x, axis=1, keepdims=True) + x.shape[1] * EPS)


def silu_gate(h: np.ndarray, hidden_dim: int) -> np.ndarray:
    """SwiGLU's silu(h1) * h3 = h1 * h3 / (1 + e^-h1), up to sign, from h = -h1 | h3.

    The gate's weights are stored negated so e^-h1 needs no negation; the sign that leaves on the
    product is taken back by negated w2 weights.
    """
    minus_h1, h3 = h[:, :hidden_dim], h[:, hidden_dim:]
    denominator = np.exp(minus_h1)
    denominator += 1.0
    gated = minus_h1 * h3
    gated /= denominator
    return gated


class Transformer:
    """A llama2.c model with its KV cache; `forward` appends tokens at a given position."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        c = self.config = checkpoint.config
        self._checkpoint = checkpoint
        w = checkpoint.weights
        self.embedding = w.token_embedding.astype(DTYPE)
        self.layers = [fuse_layer(checkpoint, layer) for layer in range(c.n_layers)]
        self.wcls = np.asfortranarray(
            (w.wcls.astype(DTYPE) * w.rms_final.astype(DTYPE) * np.sqrt(c.dim)).T
        )
        self.rotations = rope_rotations(c)
        hs, n_kv, group = c.head_size, c.n_kv_heads, c.n_heads // c.n_kv_heads
        self.group = group  # query heads sharing one key/value head
        # Keys stored transposed, (n_kv, head_size, seq_len): scoring then reads each head as
        # a contiguous matrix, which BLAS takes directly; a strided view would be copied or
        # walked element by element on every call.
        self.keys_t = [np.zeros((n_kv, hs, c.seq_len), DTYPE) for _ in self.layers]
        # Values with an extra column of ones: (n_kv, seq_len, head_size + 1). Weighting them by
        # unnormalised attention gives the softmax's denominator in the last column.
        self.values = [np.ones((n_kv, c.seq_len, hs + 1), DTYPE) for _ in self.layers]
        self.values_in = [v[:, :, :hs].transpose(1, 0, 2) for v in self.values]
        # Query rows come as (token, head in group); row r may see keys up to position r // group.
        mask = np.triu(np.full((c.seq_len, c.seq_len), -np.inf, DTYPE), 1)
        self.causal_mask = np.repeat(mask, group, axis=0)

    def forward(self, tokens: list[int] | np.ndarray, pos: int) -> np.ndarray:
        """Logits (T, vocab_size) for `tokens` at positions pos .. pos+T-1.

        The cache keeps what earlier calls wrote below `pos`; anything at or above `pos` is
        overwritten, which is how speculative decoding throws away rejected tokens.
        """
        c = self.config
        T = len(tokens)
        end = pos + T
        if pos < 0 or end > c.seq_len:
            raise ValueError(f"positions {pos}..{end - 1} are outside the context of {c.seq_len}")
        x = self.embedding[tokens]
        rotation = self.rotations[pos:end]
        mask = self.causal_mask[pos * self.group : end * self.group, :end] if T > 1 else None
        hidden_dim = c.hidden_dim
        for layer, weights in enumerate(self.layers):
            x = x + self.attention(rmsnorm(x) @ weights.wqkv, layer, pos, rotation, mask) @ weights.wo
            x = x + silu_gate(rmsnorm(x) @ weights.w13, hidden_dim) @ weights.w2
        return rmsnorm(x) @ self.wcls

    def attention(
        self, qkv: np.ndarray, layer: int, pos: int, rotation: np.ndarray, mask: np.ndarray | None
    ) -> np.ndarray:
        """Grouped-query attention of T new tokens over the cache; returns (T, dim).

        Each key/value head serves its whole group of query heads for all T tokens in one
        (T * group, head_size) @ (head_size, positions) product: n_kv matmuls, whatever T is.
        """
        c = self.config
        T, end, dim = len(qkv), pos + len(qkv), c.dim
        qk_width = dim + c.kv_dim
        # RoPE: adjacent pairs of q and k as complex numbers, rotated by one multiply.
        qk = (qkv[:, :qk_width].view(np.complex128) * rotation).view(DTYPE)
        self.keys_t[layer][..., pos:end] = qk[:, dim:].reshape(T, c.n_kv_heads, c.head_size).transpose(1, 2, 0)
        self.values_in[layer][pos:end] = qkv[:, qk_width:].reshape(T, c.n_kv_heads, c.head_size)
        # (T, dim) -> (n_kv, T * group, head_size): queries grouped by the key head they share.
        q = qk[:, :dim].reshape(T, c.n_kv_heads, self.group * c.head_size).transpose(1, 0, 2)
        q = q.reshape(c.n_kv_heads, T * self.group, c.head_size)
        scores = q @ self.keys_t[layer][..., :end]  # (n_kv, T * group, end)
        if mask is not None:
            scores += mask
        # One shift for all rows keeps exp in range (float64 only underflows 745 below the max)
        # at a third of the cost of a per-row max. (.max() is faster than maximum.reduce with
        # axis=None under Pyodide.)
        scores -= scores.max()
        np.exp(scores, out=scores)
        weighted = scores @ self.values[layer][:, :end]  # (n_kv, T * group, head_size + 1)
        out = weighted[..., :-1] / weighted[..., -1:]
        return out.reshape(c.n_kv_heads, T, self.group * c.head_size).transpose(1, 0, 2).reshape(T, dim)

    def reset(self) -> None:
        """Nothing to clear: positions are overwritten as they are reached again."""
