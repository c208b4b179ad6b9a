"""Speed measurements, run the same way on CPython and inside the browser's Pyodide.

Each engine (the runtime's model, and the straightforward port in `baseline.py`) is timed in the same process on the same inputs, the engines taking turns, best
of `repeats`, so that the ratios between them are meaningful on a noisy machine.
"""

import time

from llama2np.runtime.baseline import BaselineTransformer
from llama2np.runtime.checkpoint import Checkpoint
from llama2np.runtime.errors import Llama2npError, UsageError
from llama2np.runtime.generate import generate_tokens
from llama2np.runtime.model import make_model
from llama2np.runtime.sampler import Sampler
from llama2np.runtime.tokenizer import BOS

PLAIN, FLOAT32, PORT = "llama2np, plain", "llama2np, float32", "straightforward port"
ENGINES = {  # name -> what makes the model from a checkpoint
    PLAIN: make_model,  # the engine the product picks for this model
    FLOAT32: lambda checkpoint: make_model(checkpoint, precision=32),  # run.c's float32 engine
    PORT: BaselineTransformer,
}


def check_settings(steps: int, prompt_length: int, repeats: int) -> None:
    """Refuse settings that measure nothing (a rate needs two tokens and one run)."""
    if steps < 2:
        raise UsageError(f"--steps {steps} leaves no token to time after the first; use 2 or more.")
    if prompt_length < 1:
        raise UsageError(f"--prompt-tokens {prompt_length} measures no prompt; use 1 or more.")
    if repeats < 1:
        raise UsageError(f"--repeat {repeats} runs nothing; use 1 or more.")


def check_lengths(name: str, seq_len: int, steps: int, prompt_tokens: int) -> None:
    """Refuse lengths the model's context cannot hold, before anything is measured: the decode
    run forwards `steps` positions, the prompt run the prompt and one token after it."""
    if seq_len < 2:  # no setting fits: a rate needs two positions
        raise Llama2npError(f"{name} has a {seq_len}-token context, too short to measure (a "
                            "rate needs 2 positions); bench a model with a longer context.")
    if steps > seq_len:
        raise UsageError(f"steps {steps} is beyond the {seq_len}-token context of {name}; "
                         f"use -n {seq_len} or fewer.")
    if prompt_tokens >= seq_len:
        raise UsageError(f"prompt tokens {prompt_tokens} leave no room to generate in the "
                         f"{seq_len}-token context of {name}; use --prompt-tokens {seq_len - 1} "
                         "or fewer.")


def _greedy(checkpoint: Checkpoint, engine: object, prompt: list[int],
            steps: int) -> tuple[float, float, int]:
    """(seconds to the first token, seconds for the rest, tokens) of one greedy run."""
    # The port's cache and RoPE tables are sized by the positions this run uses (run.c sizes
    # them by seq_len); the runtime sizes its own.
    model = engine(checkpoint, steps) if engine is BaselineTransformer else engine(checkpoint)
    sampler = Sampler(checkpoint.config.vocab_size, 0.0, 0.9, 1)
    start = time.perf_counter()
    tokens = generate_tokens(model, prompt, sampler, steps)
    if next(tokens, None) is None:
        raise Llama2npError("the model's greedy story ends at once (its likeliest first token "
                            "ends a story), so there is nothing to time; measure another model.")
    first = time.perf_counter()
    count = 1 + sum(1 for _ in tokens)
    return first - start, time.perf_counter() - first, count


def measure(checkpoint: Checkpoint, steps: int = 256, prompt_length: int = 100,
            repeats: int = 3, engines: tuple[str, ...] = tuple(ENGINES),
            name: str = "the model") -> dict:
    """Decode tokens/s (greedy, empty prompt, `steps` positions), prompt tokens/s and time to
    first token for a `prompt_length`-token prompt, for each engine, best of `repeats`.

    Lengths the context cannot hold are refused with a sentence naming `name`."""
    check_settings(steps, prompt_length, repeats)
    vocab = checkpoint.config.vocab_size
    check_lengths(name, checkpoint.config.seq_len, steps, prompt_length)
    # The prompt is the model's own greedy story, so it is realistic text and needs no file.
    # A story that ends early gives a shorter prompt; the rate counts the tokens it has.
    story = [BOS, *generate_tokens(make_model(checkpoint), [BOS], Sampler(vocab, 0.0, 0.9, 1),
                                   prompt_length + 1)]
    prompt = story[:prompt_length]
    # The engines take turns within each repeat, so that a burst of load on a shared machine
    # slows one turn of every engine rather than every run of one engine.
    decodes: dict[str, list] = {name: [] for name in engines}
    prompts: dict[str, list] = {name: [] for name in engines}
    for _ in range(repeats):
        for name in engines:
            engine = ENGINES[name]
            decodes[name].append(_greedy(checkpoint, engine, [BOS], steps))
            prompts[name].append(_greedy(checkpoint, engine, prompt, len(prompt) + 1))
    results = {}
    for name in engines:
        decode = min(decodes[name], key=lambda run: run[1])
        prompted = min(prompts[name], key=lambda run: run[0])
        results[name] = {
            "decode_tokens_per_second": (decode[2] - 1) / decode[1],
            "decode_tokens": decode[2],
            "prompt_tokens_per_second": len(prompt) / prompted[0],
            "first_token_ms": prompted[0] * 1000,
        }
    return results
