"""The float64 engine for small models, shaped for NumPy's per-call cost rather than its arithmetic.

stories260K needs about 300,000 multiply-adds a token, which NumPy does in microseconds; what
costs is the number of NumPy calls, each about a microsecond under Pyodide, and the exponentials,
about ten nanoseconds each there. So every layer is a handful of large calls:

    x (dim) ── rmsnorm ── @ Wqkv ──> q | k v          one matmul: norm weights, sqrt(dim),
                                                      1/sqrt(head_size) and log2(e) folded in
    q, k ── RoPE ──> one complex multiply each        (adjacent pairs are complex numbers); the
                                                      one for k v writes the cache row
    attention: all heads at once                      (n_kv, group, t) scores, one exp2; values
                                                      carry a column of ones, so one matmul gives
                                                      both the weighted sum and its normaliser
    x += att @ Wo
    x += (silu(h1) * h3) @ W2,  h1|h3 = rmsnorm(x) @ W13   (gate and up in one matmul)

`step` decodes one token through preallocated buffers (about twenty NumPy calls a layer);
`forward` takes a batch of T tokens (a prompt) in a few more calls
a layer, whatever T is. Layer 0 needs no matmul at all: its input is a token's embedding, so
its q k v are looked up in a table made once per model.

Arithmetic is float64, so that neither the order of a BLAS kernel's sums nor the folding above
moves the logits by more than about 1e-15: the float32 sampler sees run.c's values and a batch
gives the logits of single steps.

It suits models of a few megabytes, where calls cost more than arithmetic. From some size up
(stories15M: 58 MB of float32, a vocabulary of 32,000) the float64 copies, the fused matrices
and the layer-0 table (vocab x (dim + 2 kv_dim) numbers, 221 MB there) cost ten times the
checkpoint's memory and buy nothing: a token is then millions of multiply-adds, read once from
memory, and the handful of extra calls is noise. `fits` says where that begins; beyond it
`make_model(checkpoint)` makes a `Float32Transformer` (float32.py).
"""

import math
import sys
from dataclasses import dataclass

import numpy as np

from llama2np.runtime.checkpoint import Checkpoint, Config
from llama2np.runtime.model.rope import rope_rotations
from llama2np.runtime.model.transformer import EPS, FIRST_POSITIONS, Transformer

DTYPE = np.float64
LOG2_E = 1.0 / math.log(2.0)  # exp(s) = 2^(s * log2 e): NumPy's exp2 is cheaper (docs/speed.md)
# `step` exponentiates attention scores without subtracting their maximum first (two NumPy calls
# a layer saved); a softmax normaliser inside this range proves that was exact: nothing
# overflowed, and the largest term is far above float64's smallest normal number.
NORMALISER_RANGE = (2.0**-1000, 2.0**1000)
# Vector times matrix into a buffer: ndarray.dot skips the ufunc machinery that np.matmul sets
# up, but without BLAS (Pyodide) its loop is slower than matmul's on the large matrices.
vecmat = np.matmul if sys.platform == "emscripten" else np.ndarray.dot


@dataclass
class Layer:
    """One transformer block's fused weights, as (in, out) views of (out, in) rows, so that every
    product is x @ W and each output sums over a contiguous row. NumPy without BLAS (Pyodide)
    then runs its dot-product loop, faster than walking a column; BLAS does not care.
    """

    wqkv: np.ndarray  # (dim, dim + 2 * kv_dim): q, then k and v interleaved by key/value head
    wo: np.ndarray  # (dim, dim)
    w13: np.ndarray  # (dim, 2 * hidden_dim): -w1 * log2(e) then w3; ffn norm folded in
    w2: np.ndarray  # (hidden_dim, dim): -w2 / log2(e), which undoes the gate's two factors


class LayerCache:
    """One layer's keys and values, and the views of them that attention reads and writes.

    One array (positions, n_kv, 2 * head_size + 2): each head's row is k, v, 1, 0. Weighting the
    v|1 columns by unnormalised attention gives the softmax's denominator beside the sum; the 0
    keeps rows a whole number of complex pairs, so RoPE writes k and v in one complex multiply.
    `positions` is the cache's capacity, which the Transformer grows as the story needs it.
    """

    def __init__(self, c: Config, positions: int, weighted: np.ndarray) -> None:
        hs = c.head_size
        self.rows = np.zeros((positions, c.n_kv_heads, 2 * hs + 2), DTYPE)
        self.rows[..., 2 * hs] = 1.0
        self.kv = self.rows.view(np.complex128)[..., :hs]  # where RoPE writes k and v
        self.keys = self.rows[..., :hs].transpose(1, 2, 0)  # (n_kv, hs, seq) for q @ k
        self.values = self.rows[..., hs : 2 * hs + 1].transpose(1, 0, 2)  # (n_kv, seq, hs + 1)
        # `step`'s product of attention and values|1 for this layer, (n_kv, group, hs + 1).
        self.weighted = weighted
        self.numerator, self.normaliser = weighted[..., :hs], weighted[..., hs:]


def fuse_layer(checkpoint: Checkpoint, layer: int) -> Layer:
    w, c = checkpoint.weights, checkpoint.config
    hs, n_kv = c.head_size, c.n_kv_heads

    def f64(array: np.ndarray) -> np.ndarray:
        return array.astype(DTYPE)

    # q carries attention's 1/sqrt(head_size) and log2(e), so its scores go straight to exp2.
    wq = f64(w.wq[layer]) * (LOG2_E / math.sqrt(hs))
    # k and v rows interleaved by head, (k0 v0 k1 v1 ...), as a cache row stores them.
    wkv = np.stack([f64(w.wk[layer]).reshape(n_kv, hs, c.dim),
                    f64(w.wv[layer]).reshape(n_kv, hs, c.dim)], axis=1).reshape(-1, c.dim)
    # The gate is negated and scaled so that exp2 of it is e^-h1; w2 takes the factor back.
    w13 = np.concatenate([f64(w.w1[layer]) * -LOG2_E, f64(w.w3[layer])])
    attention_norm = f64(w.rms_att[layer]) * math.sqrt(c.dim)  # see rmsnorm()
    wq, wkv = wq * attention_norm, wkv * attention_norm
    return Layer(
        wqkv=np.asfortranarray(np.concatenate([wq, wkv]).T),
        wo=np.asfortranarray(f64(w.wo[layer]).T),
        w13=np.asfortranarray((w13 * (f64(w.rms_ffn[layer]) * math.sqrt(c.dim))).T),
        w2=np.asfortranarray((f64(w.w2[layer]) * (-1.0 / LOG2_E)).T),
    )


def rmsnorm(x: np.ndarray) -> np.ndarray:
    """x / sqrt(sum(x^2) + dim * eps) per row of a batch (T, dim): RMSNorm divided by sqrt(dim).

    The sqrt(dim), like the learned weight, is folded into the next matmul's rows; that saves
    NumPy calls, the currency here. `step` computes the same scale for one row in Python floats.
    """
    return x / np.sqrt(np.einsum("ij,ij->i", x, x)[:, None] + x.shape[1] * EPS)


# The float64 engine's own memory: its float64 weights and layer-0 table. Above this budget
# the float32 engine, which adds nothing to the checkpoint's arrays, runs the model instead.
FLOAT64_BUDGET_BYTES = 48 << 20


def float64_bytes(config: Config) -> int:
    """What the float64 engine would allocate for a model: every weight in float64 (the shared
    classifier counted twice, as it is fused with the final norm) and the layer-0 table."""
    c = config
    per_layer = c.dim * (2 * c.dim + 2 * c.kv_dim) + 3 * c.dim * c.hidden_dim
    table = c.vocab_size * (c.dim + 2 * c.kv_dim)
    return 8 * (c.n_layers * per_layer + 2 * c.vocab_size * c.dim + table)


class FusedTransformer(Transformer):
    """stories260K's engine: float64 copies of the weights, fused and folded as the module's
    docstring draws them, and a KV cache that grows with the positions reached."""

    @staticmethod
    def fits(config: Config) -> bool:
        """Whether this engine's copies of a model's weights fit FLOAT64_BUDGET_BYTES."""
        return float64_bytes(config) <= FLOAT64_BUDGET_BYTES

    @staticmethod
    def memory_bytes(config: Config, positions: int) -> int:
        """The float64 copies and, per position, each layer's cache row (k, v, 1, 0 per head),
        the RoPE tables' complex numbers and a score for each head."""
        c = config
        cache = c.n_layers * c.n_kv_heads * (2 * c.head_size + 2) * 8
        rope = 16 * (c.dim // 2 + c.n_kv_heads * c.head_size)
        return float64_bytes(c) + positions * (cache + rope + 8 * c.n_heads)

    def __init__(self, checkpoint: Checkpoint) -> None:
        c = self.config = checkpoint.config
        w = checkpoint.weights
        self.group = c.n_heads // c.n_kv_heads
        # Broken weights (NaN, infinity) are reported by the sampler as a sentence, not as
        # NumPy's warnings here.
        with np.errstate(all="ignore"):
            self.embedding = w.token_embedding.astype(DTYPE)
            self.layers = [fuse_layer(checkpoint, layer) for layer in range(c.n_layers)]
            self.wcls = np.asfortranarray(
                (w.wcls.astype(DTYPE) * w.rms_final.astype(DTYPE) * math.sqrt(c.dim)).T
            )
            # Layer 0 sees only the token's embedding: its q k v for every token, computed once.
            self.qkv0 = rmsnorm(self.embedding) @ self.layers[0].wqkv
            # Logits are xn @ wcls with |xn| < 1 (see rmsnorm), so none exceeds the longest of
            # wcls's columns: the sampler knows from it which temperatures could overflow float32.
            self.logit_bound = float(np.sqrt(np.einsum("ij,ij->j", self.wcls, self.wcls).max()))

        self._make_step_buffers()
        self.caches: list[LayerCache] = []
        self.reserve(FIRST_POSITIONS)

    def _grow(self, positions: int) -> None:
        """The KV cache, the RoPE tables and the score buffer for `positions` (see reserve)."""
        c = self.config
        self.rotate_q, self.rotate_kv = rope_rotations(c, positions)
        self._scores = np.empty((c.n_kv_heads, self.group, positions), DTYPE)
        grown = [LayerCache(c, positions, self._weighted[index]) for index in range(c.n_layers)]
        for new, old in zip(grown, self.caches, strict=False):
            new.rows[: self.positions] = old.rows
        self.caches = grown

    def _make_step_buffers(self) -> None:
        """Preallocated arrays, and views of them, for `step`: no allocation or reshape per call."""
        c = self.config
        hs, n_kv, group = c.head_size, c.n_kv_heads, self.group
        self._x = np.empty(c.dim, DTYPE)
        self._xn = np.empty(c.dim, DTYPE)
        self._delta = np.empty(c.dim, DTYPE)  # what a block adds to the residual stream
        self._qkv = np.empty(c.dim + 2 * c.kv_dim, DTYPE)
        qkv_c = self._qkv.view(np.complex128)
        self._qkv_q = qkv_c[: c.dim // 2]
        self._qkv_kv = qkv_c[c.dim // 2 :].reshape(n_kv, hs)
        self._q = np.empty(c.dim // 2, np.complex128)
        self._q_heads = self._q.view(DTYPE).reshape(n_kv, group, hs)
        # Each layer's weighted values and softmax normalisers, kept for the check after a step.
        self._weighted = np.empty((c.n_layers, n_kv, group, hs + 1), DTYPE)
        self._normalisers = self._weighted[..., hs:]
        self._att = np.empty(c.dim, DTYPE)
        self._att_heads = self._att.reshape(n_kv, group, hs)
        self._h = np.empty(2 * c.hidden_dim, DTYPE)
        self._minus_h1, self._h3 = self._h[: c.hidden_dim], self._h[c.hidden_dim :]
        self._gate = np.empty(c.hidden_dim, DTYPE)

    def _batch(self, tokens: list[int] | np.ndarray, pos: int, end: int) -> np.ndarray:
        """`forward` for T > 1 once the cache holds `end` positions."""
        c = self.config
        with np.errstate(all="ignore"):  # broken weights: the sampler says so in a sentence
            x = self.embedding[tokens]
            mask = self.causal_mask(pos, end)
            for index, weights in enumerate(self.layers):
                qkv = self.qkv0[tokens] if index == 0 else rmsnorm(x) @ weights.wqkv
                x = x + self.attention(qkv, index, pos, mask) @ weights.wo
                x = x + swiglu(rmsnorm(x) @ weights.w13, c.hidden_dim) @ weights.w2
            return rmsnorm(x) @ self.wcls

    def attention(self, qkv: np.ndarray, index: int, pos: int, mask: np.ndarray) -> np.ndarray:
        """Grouped-query attention of T new tokens over the cache; returns (T, dim).

        Each key/value head serves its whole group of query heads for all T tokens in one
        (T * group, head_size) @ (head_size, positions) product: n_kv matmuls, whatever T is.
        """
        c = self.config
        T, end, dim, hs, n_kv = len(qkv), pos + len(qkv), c.dim, c.head_size, c.n_kv_heads
        qkv_c = qkv.view(np.complex128)
        q = (qkv_c[:, : dim // 2] * self.rotate_q[pos:end]).view(DTYPE)
        cache = self.caches[index]
        np.multiply(qkv_c[:, dim // 2 :].reshape(T, n_kv, hs), self.rotate_kv[pos:end],
                    out=cache.kv[pos:end])
        q = self.group_queries(q)
        scores = q @ cache.keys[..., :end]  # (n_kv, T * group, end), in log2 units
        scores += mask
        scores -= scores.max(axis=-1, keepdims=True)  # each row's largest term becomes 2^0
        np.exp2(scores, out=scores)
        weighted = scores @ cache.values[:, :end]  # (n_kv, T * group, head_size + 1)
        return self.ungroup(weighted[..., :hs] / weighted[..., hs:])

    def step(self, token: int, pos: int) -> np.ndarray:
        """Logits (vocab_size,) of one token at `pos`: `forward` for T = 1, in fewer NumPy calls.

        Every array it touches is allocated once; only the returned logits are new. Scores are
        exponentiated as they are; in the rare case that was not exact (see NORMALISER_RANGE),
        the step is taken again with each row's maximum subtracted first.
        """
        self.check_position(pos)
        # Overflow is checked next; NaN from broken weights reaches the sampler, which says so.
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            logits = self._step(token, pos, shift=False)
            low, high = NORMALISER_RANGE
            if not (self._normalisers.min() >= low and self._normalisers.max() <= high):
                logits = self._step(token, pos, shift=True)
        return logits

    def _step(self, token: int, pos: int, shift: bool) -> np.ndarray:
        c = self.config
        end, norm_eps = pos + 1, c.dim * EPS
        x, xn, delta, qkv, q, q_heads = self._x, self._xn, self._delta, self._qkv, self._q, self._q_heads
        qkv_q, qkv_kv, att, att_heads = self._qkv_q, self._qkv_kv, self._att, self._att_heads
        minus_h1, h3, h, gate = self._minus_h1, self._h3, self._h, self._gate
        scores = self._scores[..., :end]
        rotate_q, rotate_kv = self.rotate_q[pos], self.rotate_kv[pos]
        matmul, multiply, divide, exp2, sqrt = np.matmul, np.multiply, np.divide, np.exp2, math.sqrt

        np.copyto(x, self.embedding[token])
        np.copyto(qkv, self.qkv0[token])  # layer 0's q k v
        for index, (layer, cache) in enumerate(zip(self.layers, self.caches, strict=True)):
            if index:
                multiply(x, 1.0 / sqrt(float(x.dot(x)) + norm_eps), out=xn)  # rmsnorm()
                vecmat(xn, layer.wqkv, out=qkv)
            multiply(qkv_q, rotate_q, out=q)
            multiply(qkv_kv, rotate_kv, out=cache.kv[pos])
            matmul(q_heads, cache.keys[..., :end], out=scores)
            if shift:
                scores -= scores.max(axis=-1, keepdims=True)
            exp2(scores, out=scores)
            matmul(scores, cache.values[:, :end], out=cache.weighted)
            divide(cache.numerator, cache.normaliser, out=att_heads)
            vecmat(att, layer.wo, out=delta)
            x += delta

            multiply(x, 1.0 / sqrt(float(x.dot(x)) + norm_eps), out=xn)
            vecmat(xn, layer.w13, out=h)
            exp2(minus_h1, out=gate)  # e^-h1: see swiglu()
            gate += 1.0
            divide(minus_h1, gate, out=gate)
            gate *= h3
            vecmat(gate, layer.w2, out=delta)
            x += delta
        multiply(x, 1.0 / sqrt(float(x.dot(x)) + norm_eps), out=xn)
        return vecmat(xn, self.wcls)


def swiglu(h: np.ndarray, hidden_dim: int) -> np.ndarray:
    """SwiGLU's silu(h1) * h3 = h1 * h3 / (1 + e^-h1), up to constant factors, from
    h = -h1 * log2(e) | h3.

    The gate's weights are stored so that exp2 of it is e^-h1; the factor -log2(e) that leaves on
    the product is taken back by w2's weights.
    """
    minus_h1, h3 = h[:, :hidden_dim], h[:, hidden_dim:]
    gate = np.exp2(minus_h1)
    gate += 1.0
    np.divide(minus_h1, gate, out=gate)
    gate *= h3
    return gate


