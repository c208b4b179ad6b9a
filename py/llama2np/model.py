"""The Llama-2 forward pass, shaped for NumPy's per-call cost rather than its arithmetic.

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
`forward` takes a batch of T tokens (the prompt, or a token with its drafts) in a few more calls
a layer, whatever T is. Layer 0 needs no matmul at all: its input is a token's embedding, so
its q k v are looked up in a table made once per model.

Arithmetic is float64, so that neither the order of a BLAS kernel's sums nor the folding above
moves the logits by more than about 1e-15: the float32 sampler sees run.c's values and a batch
gives the logits of single steps.

That engine suits models of a few megabytes, where calls cost more than arithmetic. From some
size up (stories15M: 58 MB of float32, a vocabulary of 32,000) the float64 copies, the fused
matrices and the layer-0 table (vocab x (dim + 2 kv_dim) numbers, 221 MB there) cost ten times
the checkpoint's memory and buy nothing: a token is then millions of multiply-adds, read once
from memory, and the handful of extra calls is noise. `Transformer(checkpoint)` therefore picks
`Float32Transformer` for such models: run.c's float32 arithmetic on views of the checkpoint's
own arrays (no copy of any weight), all heads of a layer at once.
"""

import math
import sys
from dataclasses import dataclass

import numpy as np

from llama2np.checkpoint import Checkpoint, Config

DTYPE = np.float64
EPS = 1e-5  # RMSNorm's epsilon, as in llama2.c
LOG2_E = 1.0 / math.log(2.0)  # exp(s) = 2^(s * log2 e): NumPy's exp2 is a third cheaper
# `step` exponentiates attention scores without subtracting their maximum first (two NumPy calls
# a layer saved); a softmax normaliser inside this range proves that was exact: nothing
# overflowed, and the largest term is far above float64's smallest normal number.
NORMALISER_RANGE = (2.0**-1000, 2.0**1000)
# Positions the KV cache and RoPE tables hold at first; they double as positions are reached, up
# to seq_len, so that memory follows the story and not what a checkpoint's header claims (a few
# regrowths a story, each a copy of what the cache holds).
FIRST_POSITIONS = 16
# Vector times matrix into a buffer: ndarray.dot skips the ufunc machinery that np.matmul sets
# up (0.45 us a call with BLAS), but without BLAS (Pyodide) its loop is slower than matmul's on
# the large matrices.
vecmat = np.matmul if sys.platform == "emscripten" else np.ndarray.dot


@dataclass
class Layer:
    """One transformer block's fused weights, as (in, out) views of (out, in) rows, so that every
    product is x @ W and each output sums over a contiguous row. NumPy without BLAS (Pyodide)
    then runs its dot-product loop, up to 1.7x faster than walking a column; BLAS does not care.
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


def rope_rotations(config: Config, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """e^(i * pos * freq) for pos < positions: for q's pairs (positions, dim/2), and for each
    key/value head's k pairs followed by ones for its v pairs (positions, n_kv, head_size).

    The angles are computed in float32 as run.c computes them, each on its own, so the rotations
    are run.c's whatever the table's length.
    """
    hs = config.head_size
    freq = np.float32(1.0) / np.power(
        np.float32(10000.0), np.arange(0, hs, 2, dtype=np.float32) / np.float32(hs)
    )
    angle = np.arange(positions, dtype=np.float32)[:, None] * freq[None, :]
    per_head = np.cos(angle).astype(DTYPE) + 1j * np.sin(angle).astype(DTYPE)  # (seq, hs/2)
    q = np.tile(per_head, (1, config.n_heads))
    kv = np.concatenate([per_head, np.ones_like(per_head)], axis=1)
    return q, np.repeat(kv[:, None, :], config.n_kv_heads, axis=1)


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


class Transformer:
    """A llama2.c model with its KV cache; `forward` appends tokens at a given position. The
    cache grows with the positions reached (see `reserve`), whatever the header's seq_len.

    `Transformer(checkpoint)` is this float64 engine for a small model and `Float32Transformer`
    for one whose float64 copies would exceed FLOAT64_BUDGET_BYTES; `precision` (64 or 32)
    chooses by hand.
    """

    def __new__(cls, checkpoint: Checkpoint, precision: int | None = None) -> "Transformer":
        if cls is Transformer:
            if precision is None:
                large = float64_bytes(checkpoint.config) > FLOAT64_BUDGET_BYTES
                precision = 32 if large else 64
            if precision == 32:
                return super().__new__(Float32Transformer)
            if precision != 64:
                raise ValueError(f"precision {precision} is neither 32 nor 64")
        return super().__new__(cls)

    def __init__(self, checkpoint: Checkpoint, precision: int | None = None) -> None:
        c = self.config = checkpoint.config
        w = checkpoint.weights
        self.group = c.n_heads // c.n_kv_heads  # query heads sharing one key/value head
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
        self.positions = 0  # what the KV cache and RoPE tables hold; see reserve()
        self.caches: list[LayerCache] = []
        self.reserve(min(c.seq_len, FIRST_POSITIONS))

    def reserve(self, end: int) -> None:
        """Make room for positions below `end`: grow the KV cache, the RoPE tables and the score
        buffer by doubling (at most to seq_len), keeping what the cache holds.

        A header may claim any context; sizing these by seq_len would allocate gigabytes for a
        story of five tokens. Doubling keeps the copies to about one per position.
        """
        if end <= self.positions:
            return
        c = self.config
        positions = min(max(end, 2 * self.positions), c.seq_len)
        self.rotate_q, self.rotate_kv = rope_rotations(c, positions)
        self._scores = np.empty((c.n_kv_heads, self.group, positions), DTYPE)
        grown = [LayerCache(c, positions, self._weighted[index]) for index in range(c.n_layers)]
        for new, old in zip(grown, self.caches, strict=False):
            new.rows[: self.positions] = old.rows
        self.caches, self.positions = grown, positions

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

    def forward(self, tokens: list[int] | np.ndarray, pos: int) -> np.ndarray:
        """Logits (T, vocab_size) for `tokens` at positions pos .. pos+T-1.

        The cache keeps what earlier calls wrote below `pos`; anything at or above `pos` is
        overwritten, which is how speculative decoding throws away rejected tokens.
        """
        c = self.config
        T = len(tokens)
        end = pos + T
        if pos < 0 or end > c.seq_len or T == 0:
            raise ValueError(f"positions {pos}..{end - 1} are outside the context of {c.seq_len}")
        if T == 1:
            return self.step(int(tokens[0]), pos)[None, :]
        self.reserve(end)
        return self._batch(tokens, pos, end)

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

    def causal_mask(self, pos: int, end: int) -> np.ndarray:
        """(T * group, end) for the tokens at pos .. end-1: 0 where query row r (token r // group,
        one of its group's heads) may see key position j, -inf where j is ahead of it."""
        rows = np.arange(pos, end).repeat(self.group)[:, None]
        return np.where(np.arange(end)[None, :] > rows, -np.inf, 0.0)

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
        # (T, dim) -> (n_kv, T * group, head_size): queries grouped by the key head they share.
        q = q.reshape(T, n_kv, self.group * hs).transpose(1, 0, 2).reshape(n_kv, T * self.group, hs)
        scores = q @ cache.keys[..., :end]  # (n_kv, T * group, end), in log2 units
        scores += mask
        scores -= scores.max(axis=-1, keepdims=True)  # each row's largest term becomes 2^0
        np.exp2(scores, out=scores)
        weighted = scores @ cache.values[:, :end]  # (n_kv, T * group, head_size + 1)
        out = weighted[..., :hs] / weighted[..., hs:]
        return out.reshape(n_kv, T, self.group * hs).transpose(1, 0, 2).reshape(T, dim)

    def step(self, token: int, pos: int) -> np.ndarray:
        """Logits (vocab_size,) of one token at `pos`: `forward` for T = 1, in fewer NumPy calls.

        Every array it touches is allocated once; only the returned logits are new. Scores are
        exponentiated as they are; in the rare case that was not exact (see NORMALISER_RANGE),
        the step is taken again with each row's maximum subtracted first.
        """
        c = self.config
        if not 0 <= pos < c.seq_len:
            raise ValueError(f"position {pos} is outside the context of {c.seq_len}")
        if pos >= self.positions:
            self.reserve(pos + 1)
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

    def reset(self) -> None:
        """Nothing to clear: positions are overwritten as they are reached again."""


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
    """run.c's float32 forward pass on the checkpoint's own arrays, for models whose weights,
    not NumPy's calls, set the pace (see the module's docstring).

    Nothing is fused or copied: each product reads llama2.c's (out, in) rows where the file put
    them, so memory is the checkpoint, the KV cache (grown with the story) and a few vectors.
    Each step does what the straightforward port (`baseline.py`) does, in its order and
    precision, with all heads of a layer in one product instead of a loop; a batch (a prompt)
    does the same with matrix products.
    """

    def __init__(self, checkpoint: Checkpoint, precision: int | None = None) -> None:
        c = self.config = checkpoint.config
        self.weights = w = checkpoint.weights
        self.group = c.n_heads // c.n_kv_heads
        # Python float, as the port: multiplying float32 by it stays float32.
        self.attention_scale = 1.0 / math.sqrt(c.head_size)
        with np.errstate(all="ignore"):  # broken weights: the sampler says so in a sentence
            self.logit_bound = classifier_bound(w.wcls, w.rms_final, c.dim)
        self._make_step_buffers()
        self.positions = 0
        self.keys: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.reserve(min(c.seq_len, FIRST_POSITIONS))

    def reserve(self, end: int) -> None:
        """As `Transformer.reserve`: the caches and RoPE table double up to what `end` needs."""
        if end <= self.positions:
            return
        c = self.config
        positions = min(max(end, 2 * self.positions), c.seq_len)
        # run.c's float32 cos and sin, held exactly as complex64: pair i turns by its head's angle.
        self.rotate = rope_rotations(c, positions)[0].astype(np.complex64)
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
        self.positions = positions

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
        if not 0 <= pos < c.seq_len:
            raise ValueError(f"position {pos} is outside the context of {c.seq_len}")
        if pos >= self.positions:
            self.reserve(pos + 1)
        end, half_kv = pos + 1, c.kv_dim // 2
        x, xn, delta, q, q_heads = self._x, self._xn, self._delta, self._q, self._q_heads
        att, att_heads, sums, h1, h3, gate = (self._att, self._att_heads, self._sums, self._h1,
                                              self._h3, self._gate)
        rotate, scores = self.rotate[pos], self._scores[..., :end]
        with np.errstate(all="ignore"):  # NaN from broken weights reaches the sampler
            np.copyto(x, w.token_embedding[token])
            for layer in range(c.n_layers):
                rmsnorm_into(x, w.rms_att[layer], xn)
                matvec(w.wq[layer], xn, q)
                q.view(np.complex64).__imul__(rotate)  # RoPE: pairs as complex numbers
                q *= self.attention_scale
                key = self.keys[layer][pos].reshape(-1)
                matvec(w.wk[layer], xn, key)
                key.view(np.complex64).__imul__(rotate[:half_kv])
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
        rotate = self.rotate[pos:end]
        with np.errstate(all="ignore"):
            x = w.token_embedding[tokens]
            mask = self.causal_mask(pos, end).astype(np.float32)
            for layer in range(c.n_layers):
                xn = rmsnorm_rows(x, w.rms_att[layer])
                q = matmat(xn, w.wq[layer])
                q.view(np.complex64).__imul__(rotate)
                q *= self.attention_scale
                keys = matmat(xn, w.wk[layer]).view(np.complex64)
                keys *= rotate[:, :half_kv]
                self.keys[layer][pos:end] = keys.view(np.float32).reshape(T, n_kv, hs)
                self.values[layer][pos:end] = matmat(xn, w.wv[layer]).reshape(T, n_kv, hs)
                # (T, dim) -> (n_kv, T * group, hs): queries grouped by the key head they share.
                q = q.reshape(T, n_kv, self.group * hs).transpose(1, 0, 2).reshape(n_kv, -1, hs)
                scores = q @ self.keys[layer][:end].transpose(1, 2, 0) + mask
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=-1, keepdims=True)
                att = scores @ self.values[layer][:end].transpose(1, 0, 2)
                att = att.reshape(n_kv, T, self.group * hs).transpose(1, 0, 2).reshape(T, c.dim)
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
