"""run.c's sampler, float32 for float32: xorshift64* RNG, argmax, multinomial and top-p.

The same seed must give the same story as run.c, so the arithmetic follows run.c's order and
precision: a float32 softmax summed left to right, float32 cumulative sums, and a stable sort
(glibc's qsort is a merge sort, so equal probabilities keep their index order).
"""

import math

import numpy as np

from llama2np.runtime.errors import Llama2npError, UsageError

U64 = (1 << 64) - 1
F32 = np.float32
# logits / temperature, and the softmax's x - max, must stay finite in float32; below this
# margin of its largest value a temperature is sampled as run.c would, above it greedily.
SAFE_SCALED_LOGIT = float(np.finfo(F32).max) / 4


class NonFiniteLogits(Llama2npError):
    """The model's logits hold NaN or infinity: its weights are broken. The generation loop
    adds the position to the sentence."""

    def __init__(self, value: float) -> None:
        self.what = "NaN" if math.isnan(value) else "an infinite logit"
        super().__init__(f"the model produced {self.what}; run llama2np validate on the checkpoint.")


class Rng:
    """run.c's xorshift64* generator; the state is a 64-bit unsigned integer."""

    def __init__(self, seed: int) -> None:
        self.state = seed & U64

    def u32(self) -> int:
        state = self.state
        state ^= state >> 12
        state ^= (state << 25) & U64
        state ^= state >> 27
        self.state = state
        return ((state * 0x2545F4914F6CDD1D) & U64) >> 32

    def f32(self) -> np.float32:
        """A float32 in [0, 1) from the top 24 bits, exactly as run.c's `random_f32`."""
        return F32(self.u32() >> 8) / F32(16777216.0)


def check_temperature(temperature: float) -> float:
    if not (np.isfinite(temperature) and temperature >= 0):
        raise UsageError(f"temperature {temperature} is out of range; use a number of 0 or more.")
    return float(temperature)


def check_topp(topp: float) -> float:
    if not (np.isfinite(topp) and 0 <= topp <= 1):
        raise UsageError(f"top-p {topp} is out of range; use a number from 0 to 1.")
    return float(topp)


class Sampler:
    """Chooses the next token from logits, consuming the RNG exactly as run.c does.

    `logit_bound`, when known (`Transformer.logit_bound`), bounds every logit's magnitude. A
    temperature so small that logits / temperature could overflow float32 (run.c then samples
    from NaN) picks the most likely token instead, which is what such a temperature tends to;
    it still draws run.c's coin, so the RNG stream does not depend on it.
    """

    def __init__(self, vocab_size: int, temperature: float, topp: float, seed: int,
                 logit_bound: float | None = None) -> None:
        self.vocab_size = vocab_size
        with np.errstate(over="ignore"):  # above float32's range it is infinite, as in run.c
            self.temperature = F32(check_temperature(temperature))
        self.topp = F32(check_topp(topp))
        self.cutoff = nucleus_cutoff(self.topp, vocab_size)  # computed once, not per token
        self.rng = Rng(seed)
        # Decided once, so the per-token path pays nothing for it; a NaN bound (NaN weights)
        # fails the comparison and goes greedy, where argmax reports the NaN.
        self.greedy = self.temperature == 0 or not (
            logit_bound is None or logit_bound / float(self.temperature) < SAFE_SCALED_LOGIT)

    def sample(self, logits: np.ndarray) -> int:
        """The next token; raises NonFiniteLogits when the logits hold NaN or infinity."""
        if self.greedy:
            if self.temperature != 0:
                self.rng.f32()
            return argmax(logits)
        scaled = np.divide(logits, self.temperature, dtype=F32)
        top = scaled.max()  # NaN if any logit is NaN
        coin = self.rng.f32()
        if not math.isfinite(top):  # NaN or infinite logits (argmax says so), or an overflow
            return argmax(logits)  # that no logit_bound foresaw
        probabilities = softmax(scaled, top)
        if self.topp <= 0 or self.topp >= 1:
            return sample_multinomial(probabilities, coin)
        return sample_topp(probabilities, self.topp, coin, self.cutoff)


class ExplainingSampler(Sampler):
    """A Sampler that also records why: after each `sample`, `explained` holds the chosen token's
    probability and the `ALTERNATIVES` likeliest tokens with theirs.

    The probabilities are the softmax of the logits at the sampler's temperature (at temperature
    0, of the logits themselves), before top-p narrows them. The choice itself is Sampler's,
    untouched: the same tokens and RNG draws; the extra NumPy work is only on this path.
    """

    ALTERNATIVES = 5

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.explained: tuple[float, list[tuple[int, float]]] = (0.0, [])

    def sample(self, logits: np.ndarray) -> int:
        token = super().sample(logits)
        self.explained = explain(logits, self.temperature, token, self.ALTERNATIVES)
        return token


def explain(logits: np.ndarray, temperature: np.float32, token: int,
            alternatives: int) -> tuple[float, list[tuple[int, float]]]:
    """`token`'s probability at `temperature` and the `alternatives` likeliest (token, p).

    A temperature so small that the logits divided by it overflow float32 is its limit, as the
    sampler takes it: all the probability on the likeliest token (shared by equal ones)."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.divide(logits, temperature if temperature > 0 else F32(1), dtype=F32)
    if np.isfinite(scaled).all():
        probabilities = softmax(scaled)
    else:
        probabilities = (logits == logits.max()).astype(F32)
        probabilities /= probabilities.sum()
    likeliest = (-probabilities).argsort(kind="stable")[:alternatives]
    return (float(probabilities[token]),
            [(int(t), float(probabilities[t])) for t in likeliest])


def argmax(logits: np.ndarray) -> int:
    """The first index of the largest logit (run.c keeps the first on ties, as NumPy does).

    NumPy's argmax stops at the first NaN, so one look at the winner finds NaN anywhere.
    """
    logits = logits.astype(F32)
    index = int(logits.argmax())
    if not math.isfinite(logits[index]):
        raise NonFiniteLogits(float(logits[index]))
    return index


def softmax(x: np.ndarray, top: np.float32 | None = None) -> np.ndarray:
    """run.c's float32 softmax: subtract the max (`top`, if the caller has it), exponentiate,
    divide by the running sum."""
    # exp in float64 rounded to float32 is the correctly rounded expf that C libraries
    # approximate to within an ulp; NumPy's own float32 exp differs from them more often.
    e = np.exp(x - (x.max() if top is None else top), dtype=np.float64).astype(F32)
    total = e.cumsum()[-1]  # left to right in float32, like run.c's loop (np.sum is pairwise)
    e /= total
    return e


def sample_multinomial(probabilities: np.ndarray, coin: np.float32) -> int:
    """The first index whose cumulative probability exceeds the coin."""
    cdf = probabilities.cumsum()  # float32, left to right
    index = int(cdf.searchsorted(coin, side="right"))
    return min(index, len(probabilities) - 1)  # rounding can leave the total below the coin


def nucleus_cutoff(topp: np.float32, n: int) -> np.float32:
    """run.c's (1 - topp) / (n - 1): a token below it cannot be in the nucleus (see sample_topp)."""
    return (F32(1) - topp) / F32(max(n - 1, 1))


def sample_topp(probabilities: np.ndarray, topp: np.float32, coin: np.float32,
                cutoff: np.float32 | None = None) -> int:
    """Nucleus sampling: sample among the most likely tokens whose mass first exceeds `topp`.

    Tokens below (1 - topp) / (n - 1) cannot be in the nucleus, so run.c drops them before
    sorting; keeping that cutoff keeps the float32 sums, and so the choices, identical. Running
    sums of probabilities never decrease, so "the first sum above x" is a binary search. (Array
    methods rather than NumPy's functions: under Pyodide each function's dispatch is dear.)
    """
    if cutoff is None:
        cutoff = nucleus_cutoff(topp, len(probabilities))
    (candidates,) = (probabilities >= cutoff).nonzero()
    kept = probabilities[candidates]
    by_probability = (-kept).argsort(kind="stable")  # descending; ties keep index order
    cumulative = kept[by_probability].cumsum()  # float32, left to right
    last = min(int(cumulative.searchsorted(topp, side="right")), len(cumulative) - 1)
    r = coin * cumulative[last]
    index = min(int(cumulative.searchsorted(r, side="right")), last)
    return int(candidates[by_probability[index]])
