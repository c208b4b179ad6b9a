"""run.c's sampler, float32 for float32: xorshift64* RNG, argmax, multinomial and top-p.

The same seed must give the same story as run.c, so the arithmetic follows run.c's order and
precision: a float32 softmax summed left to right, float32 cumulative sums, and a stable sort
(glibc's qsort is a merge sort, so equal probabilities keep their index order).
"""

import numpy as np

from llama2np.errors import UsageError

U64 = (1 << 64) - 1
F32 = np.float32


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
    """Chooses the next token from logits, consuming the RNG exactly as run.c does."""

    def __init__(self, vocab_size: int, temperature: float, topp: float, seed: int) -> None:
        self.vocab_size = vocab_size
        self.temperature = F32(check_temperature(temperature))
        self.topp = F32(check_topp(topp))
        self.cutoff = nucleus_cutoff(self.topp, vocab_size)  # computed once, not per token
        self.rng = Rng(seed)

    def sample(self, logits: np.ndarray) -> int:
        if self.temperature == 0:
            return argmax(logits)
        probabilities = softmax(np.divide(logits, self.temperature, dtype=F32))
        coin = self.rng.f32()
        if self.topp <= 0 or self.topp >= 1:
            return sample_multinomial(probabilities, coin)
        return sample_topp(probabilities, self.topp, coin, self.cutoff)


def argmax(logits: np.ndarray) -> int:
    """The first index of the largest logit (run.c keeps the first on ties, as NumPy does)."""
    return int(logits.astype(F32).argmax())


def softmax(x: np.ndarray) -> np.ndarray:
    """run.c's float32 softmax: subtract the max, exponentiate, divide by the running sum."""
    # exp in float64 rounded to float32 is the correctly rounded expf that C libraries
    # approximate to within an ulp; NumPy's own float32 exp differs from them more often.
    e = np.exp(x - x.max(), dtype=np.float64).astype(F32)
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
    methods rather than NumPy's functions: under Pyodide each function's dispatch costs ~1 us.)
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
