"""What every engine of the forward pass shares: the bounds of the context, a KV cache that grows
with the story, and the causal mask of a batch."""

import numpy as np

from llama2np.runtime.checkpoint import Config

EPS = 1e-5  # RMSNorm's epsilon, as in llama2.c
# Positions the KV cache and RoPE tables hold at first; they double as positions are reached, up
# to seq_len, so that memory follows the story and not what a checkpoint's header claims (a few
# regrowths a story, each a copy of what the cache holds).
FIRST_POSITIONS = 16


class Transformer:
    """A llama2.c model with its KV cache; `forward` appends tokens at a given position.

    An engine is a subclass that provides `step` (one token), `_batch` (several) and `_grow`
    (room for more positions); `model.make_model` picks the one that suits a model.
    """

    config: Config
    group: int  # query heads sharing one key/value head
    logit_bound: float  # no logit exceeds it: the sampler knows which temperatures overflow
    positions: int = 0  # what the KV cache and RoPE tables hold; see reserve()

    def forward(self, tokens: list[int] | np.ndarray, pos: int) -> np.ndarray:
        """Logits (T, vocab_size) for `tokens` at positions pos .. pos+T-1.

        The cache keeps what earlier calls wrote below `pos`; anything at or above `pos` is
        overwritten.
        """
        T = len(tokens)
        end = pos + T
        if pos < 0 or end > self.config.seq_len or T == 0:
            raise ValueError(f"positions {pos}..{end - 1} are outside the context of "
                             f"{self.config.seq_len}")
        if T == 1:
            return self.step(int(tokens[0]), pos)[None, :]
        self.reserve(end)
        return self._batch(tokens, pos, end)

    def step(self, token: int, pos: int) -> np.ndarray:
        """Logits (vocab_size,) of one token at `pos`: `forward` for T = 1, in fewer NumPy calls."""
        raise NotImplementedError

    def _batch(self, tokens: list[int] | np.ndarray, pos: int, end: int) -> np.ndarray:
        """`forward` for T > 1 once the cache holds `end` positions."""
        raise NotImplementedError

    def _grow(self, positions: int) -> None:
        """Make the KV cache and RoPE tables hold `positions`, keeping what the cache holds."""
        raise NotImplementedError

    @staticmethod
    def memory_bytes(config: Config, positions: int) -> int:
        """What the engine allocates beyond the checkpoint's arrays with `positions` in its cache."""
        raise NotImplementedError

    def reserve(self, end: int) -> None:
        """Make room for positions below `end`, by doubling (at most to seq_len).

        A header may claim any context; sizing the cache by seq_len would allocate gigabytes for
        a story of five tokens. Doubling keeps the copies to about one per position.
        """
        if end <= self.positions:
            return
        positions = min(max(end, 2 * self.positions, FIRST_POSITIONS), self.config.seq_len)
        self._grow(positions)
        self.positions = positions

    def check_position(self, pos: int) -> None:
        """`step`'s bounds: `pos` inside the context, and room for it in the cache."""
        if not 0 <= pos < self.config.seq_len:
            raise ValueError(f"position {pos} is outside the context of {self.config.seq_len}")
        if pos >= self.positions:  # rarely: the cache doubles
            self.reserve(pos + 1)

    def group_queries(self, q: np.ndarray) -> np.ndarray:
        """(T, dim) -> (n_kv_heads, T * group, head_size): each key/value head with the queries
        of its whole group of heads, for all T tokens."""
        hs, n_kv = self.config.head_size, self.config.n_kv_heads
        T = len(q)
        return q.reshape(T, n_kv, self.group * hs).transpose(1, 0, 2).reshape(n_kv, T * self.group, hs)

    def ungroup(self, out: np.ndarray) -> np.ndarray:
        """`group_queries` undone: (n_kv_heads, T * group, head_size) -> (T, dim)."""
        n_kv, rows, hs = out.shape
        T = rows // self.group
        return out.reshape(n_kv, T, self.group * hs).transpose(1, 0, 2).reshape(T, n_kv * self.group * hs)

    def causal_mask(self, pos: int, end: int) -> np.ndarray:
        """(T * group, end) for the tokens at pos .. end-1: 0 where query row r (token r // group,
        one of its group's heads) may see key position j, -inf where j is ahead of it."""
        rows = np.arange(pos, end).repeat(self.group)[:, None]
        return np.where(np.arange(end)[None, :] > rows, -np.inf, 0.0)

