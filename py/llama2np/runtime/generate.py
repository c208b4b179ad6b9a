"""The generation loop: run.c's semantics, driven one slice at a time.

run.c forwards positions 0 .. steps-1; at positions inside the prompt the next token is the
prompt's, after it the sampler's; a sampled BOS ends the story. Here the prompt goes through the
model in batches, which changes no token and no RNG draw.

`Story` is what callers use: the command line loops over `advance()`, the browser worker calls
it with a small time budget so that JavaScript regains control between slices. A story cut off
by its length can be continued (`extend`): its token generator runs to the end of the context and
the story merely stops asking it for tokens, so the generator sits just after the last token, with
the sampler's RNG and the model's key/value cache where a longer length would have had them.
"""

import time
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from llama2np.runtime.checkpoint import Config
from llama2np.runtime.errors import Llama2npError, PromptTooLong, UsageError
from llama2np.runtime.sampler import ExplainingSampler, NonFiniteLogits, Sampler, explain
from llama2np.runtime.tokenizer import BOS, TextStream, Tokenizer


class Model(Protocol):
    """What generation needs of a model: the runtime's Transformer, or the straightforward port."""

    config: Config

    def forward(self, tokens: list[int], pos: int) -> np.ndarray:
        """Logits (T, vocab_size) for `tokens` at positions pos .. pos+T-1."""
        ...


def clamp_steps(steps: int, seq_len: int) -> int:
    """run.c: 0 or anything beyond the context means the whole context."""
    if steps < 0:
        raise UsageError(f"steps {steps} is negative; use a positive number (0 = the whole context).")
    return seq_len if steps == 0 or steps > seq_len else steps


def check_prompt_fits(n_prompt: int, steps: int, seq_len: int) -> None:
    """A prompt must leave at least one position to generate from (n_prompt counts BOS)."""
    if n_prompt > seq_len:
        raise PromptTooLong(
            f"the prompt is {n_prompt - 1} tokens long but the model's context is {seq_len} tokens; "
            "shorten the prompt.", n_prompt - 1, steps, seq_len
        )
    if n_prompt > steps:
        raise PromptTooLong(
            f"the prompt is {n_prompt - 1} tokens long, which fills all {steps} steps; "
            "raise the number of steps or shorten the prompt.", n_prompt - 1, steps, seq_len
        )


# A prompt goes through the model in batches whose attention scores (heads x batch x positions,
# float64) stay within this, so a long prompt costs memory in proportion to its length, not to
# its square; below it (any prompt of stories260K's context) the prompt is one batch.
PREFILL_SCORE_BYTES = 32 << 20
PREFILL_MAX_BATCH = 512  # tokens, which also bounds the batch's other arrays


def batches(model: "Model", tokens: list[int]) -> Iterator[np.ndarray]:
    """The logits (T, vocab_size) at every position of `tokens`, forwarded a batch at a time."""
    n = len(tokens)
    fits = PREFILL_SCORE_BYTES // (8 * model.config.n_heads * n)  # scores reach n positions
    batch = max(1, min(fits, PREFILL_MAX_BATCH))
    for pos in range(0, n, batch):
        yield model.forward(tokens[pos : pos + batch], pos)


def prefill(model: "Model", prompt_tokens: list[int]) -> np.ndarray:
    """The logits after the prompt, (1, vocab_size)."""
    *_, last = batches(model, prompt_tokens)
    return last[-1:]


def generate_tokens(
    model: "Model",
    prompt_tokens: list[int],
    sampler: Sampler,
    steps: int,
) -> Iterator[int]:
    """Yield each generated token (the prompt's tokens are not repeated) until BOS or `steps`
    positions, as run.c's loop does."""
    pos = len(prompt_tokens) - 1  # the position whose logits come next
    logits = prefill(model, prompt_tokens)[0]
    while True:
        try:
            token = sampler.sample(logits)
        except NonFiniteLogits as error:
            raise Llama2npError(
                f"the model produced {error.what} at position {pos}; "
                "run llama2np validate on the checkpoint."
            ) from None
        if token == BOS:
            return
        yield token
        pos += 1
        if pos >= steps:
            return
        logits = model.forward([token], pos)[0]


class Story:
    """One story in the making: prompt checks, text streaming and statistics around the loop."""

    def __init__(
        self,
        model: "Model",
        tokenizer: Tokenizer,
        prompt: str = "",
        *,
        temperature: float = 1.0,
        topp: float = 0.9,
        seed: int | None = None,
        steps: int = 256,
        explain: bool = False,
    ) -> None:
        """`explain` records, for each generated token, its probability and the likeliest
        alternatives (`explanations`); it changes no token and no RNG draw."""
        config = model.config
        if not seed:  # run.c: a seed of 0 means "from the clock"
            seed = int(time.time())
        if seed < 0:
            raise UsageError(f"seed {seed} is negative; use a positive number (0 = from the clock).")
        self.seed = seed
        self.seq_len = config.seq_len
        self.steps = clamp_steps(steps, config.seq_len)
        kind = ExplainingSampler if explain else Sampler
        self._sampler = kind(config.vocab_size, temperature, topp, seed,
                             getattr(model, "logit_bound", None))
        self.prompt_tokens = tokenizer.encode(prompt)
        check_prompt_fits(len(self.prompt_tokens), self.steps, config.seq_len)
        self.prompt_text = tokenizer.decode(self.prompt_tokens)
        self.tokens: list[int] = []
        self.explanations: list[dict] | None = [] if explain else None
        self._explained = 0  # explanations already handed out by new_explanations()
        self.done = False
        self.ended: str | None = None  # "end" (the model wrote BOS) or "length"
        self._tokenizer = tokenizer
        self._stream = TextStream(tokenizer, previous=self.prompt_tokens[-1])
        self._held: object = None  # the UTF-8 decoder's state before a length end's flush
        self._tail_length = 0  # characters that flush gave out
        # Bounded by the context, not by `steps`: the story stops asking at `steps` (see extend).
        self._generator = generate_tokens(model, self.prompt_tokens, self._sampler, config.seq_len)
        self._busy_seconds = 0.0  # time spent inside advance(), i.e. computing
        self._first_token_seconds: float | None = None

    def advance(self, max_tokens: int = 1 << 30, max_seconds: float = float("inf")) -> str:
        """Generate until `max_tokens` more tokens, `max_seconds` or the end; return the new text."""
        if self.done:
            return ""
        start = time.perf_counter()
        pieces = []
        for _ in range(max_tokens):
            if self.positions() >= self.steps:
                pieces.append(self._end("length"))
                break
            token = next(self._generator, None)
            if token is None:
                pieces.append(self._end("end" if self.positions() < self.seq_len else "length"))
                break
            if self._first_token_seconds is None:
                self._first_token_seconds = self._busy_seconds + time.perf_counter() - start
            self.tokens.append(token)
            text = self._stream.push(token)
            pieces.append(text)
            if self.explanations is not None:
                self.explanations.append(self._explain(token, text))
            if time.perf_counter() - start >= max_seconds:
                break
        self._busy_seconds += time.perf_counter() - start
        return "".join(pieces)

    def positions(self) -> int:
        """Positions the model has been asked for so far, as run.c counts steps."""
        return len(self.prompt_tokens) - 1 + len(self.tokens)

    def _end(self, how: str) -> str:
        """Mark the end and flush the text stream; returns the flushed text."""
        self.done, self.ended = True, how
        self._held = self._stream.utf8.getstate()
        tail = self._stream.flush()
        self._tail_length = len(tail)
        return tail

    @property
    def can_continue(self) -> bool:
        """Whether `extend` can write more: the story stopped before the model ended it and
        before the context was full."""
        return self.ended != "end" and self.positions() < self.seq_len

    def extend(self, steps: int = 0) -> int:
        """Go on writing up to `steps` positions (0 = the whole context), exactly as if the story
        had been started with that length. Returns how many characters of the text already
        handed out to take back: a length end flushed a character cut in the middle of its bytes
        as U+FFFD, and the rest of its bytes now follow."""
        steps = clamp_steps(steps, self.seq_len)
        if self.ended == "end":
            raise UsageError("the model ended this story, so it cannot go on; write a new one.")
        if not self.can_continue:
            raise UsageError(f"the story fills the model's context of {self.seq_len} tokens, so "
                             "it cannot go on; write a new one.")
        if steps <= self.positions():
            raise UsageError(f"the story already has {self.positions()} positions; choose a "
                             f"longer length, up to the context of {self.seq_len}.")
        taken_back = 0
        if self._held is not None:
            self._stream.utf8.setstate(self._held)
            taken_back, self._held = self._tail_length, None
        self.steps, self.done, self.ended = steps, False, None
        return taken_back

    def _explain(self, token: int, text: str) -> dict:
        """The token's probability and the likeliest alternatives, with their pieces as text."""
        previous = self.tokens[-2] if len(self.tokens) > 1 else self.prompt_tokens[-1]
        return self._explanation(previous, token, text, *self._sampler.explained)

    def _explanation(self, previous: int, token: int, text: str, p: float,
                     top: list[tuple[int, float]]) -> dict:
        piece = self._tokenizer.piece
        return {"token": token, "text": text, "p": p,
                "top": [{"token": t, "text": piece(previous, t).decode("utf-8", "replace"), "p": q}
                        for t, q in top]}

    def explain_written(self, model: "Model") -> list[dict]:
        """What `explain` would have recorded for every token written so far, worked out
        afterwards: one batched pass of `model` over the story. `model` must be another than the
        story's own, whose cache a continuation still needs."""
        tokens = self.prompt_tokens + self.tokens
        first = len(self.prompt_tokens) - 1  # the position whose logits chose the first token
        stream = TextStream(self._tokenizer, previous=self.prompt_tokens[-1])
        explained, pos = [], 0
        for logits in batches(model, tokens[:-1]):
            for row in logits:
                if pos >= first:
                    token = tokens[pos + 1]
                    p, top = explain(row, self._sampler.temperature, token,
                                     ExplainingSampler.ALTERNATIVES)
                    explained.append(self._explanation(tokens[pos], token, stream.push(token), p, top))
                pos += 1
        return explained

    def new_explanations(self) -> list[dict]:
        """The explanations of the tokens written since the last call (none without `explain`)."""
        if self.explanations is None:
            return []
        new = self.explanations[self._explained :]
        self._explained = len(self.explanations)
        return new

    def text(self) -> str:
        """Write the whole story and return its continuation (without the prompt)."""
        return "".join(iter(self.advance, "")) if not self.done else ""

    def stats(self) -> dict:
        """Token counts and speeds; decode speed counts from the first token, as run.c does."""
        generated = len(self.tokens)
        first = self._first_token_seconds or 0.0
        after_first = self._busy_seconds - first
        return {
            "prompt_tokens": len(self.prompt_tokens) - 1,
            "generated_tokens": generated,
            "seconds": self._busy_seconds,
            "first_token_seconds": first,
            "tokens_per_second": (generated - 1) / after_first if generated > 1 and after_first > 0 else 0.0,
        }
