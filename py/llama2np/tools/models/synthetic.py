"""Checkpoints of llama2.c's published shapes with weights drawn from a fixed seed.

stories15M, 42M and 110M cannot be downloaded here, but a file of the same shape runs exactly the
same code paths, memory and arithmetic: the benchmark sweep and the large-model tests use these.
Random weights write random text, so a greedy story soon repeats a token; compare engines with
seeded sampling as well.
"""

from pathlib import Path

import numpy as np

from llama2np.runtime.checkpoint import Checkpoint, Config, Weights, weight_shapes
from llama2np.runtime.tokenizer import Tokenizer
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.outputs import write_atomic

# llama2.c's TinyStories models (stories260K has its own files and tokenizer).
SHAPES = {
    "15M": Config(dim=288, hidden_dim=768, n_layers=6, n_heads=6, n_kv_heads=6,
                  vocab_size=32000, seq_len=256),
    "42M": Config(dim=512, hidden_dim=1376, n_layers=8, n_heads=8, n_kv_heads=8,
                  vocab_size=32000, seq_len=1024),
    "110M": Config(dim=768, hidden_dim=2048, n_layers=12, n_heads=12, n_kv_heads=12,
                   vocab_size=32000, seq_len=1024),
}
SEED = 2026
# Small beside what the layers add, so the residual stream is not the input token over again
# (with a shared classifier the model would then predict its own input: BOS, BOS, end).
EMBEDDING_SCALE = 0.1
# The final norm's weight: logits with a spread like a trained model's (a softmax peaked on a few
# tokens). With 1, they would be nearly flat over 32,000 tokens, and top-p would draw among
# thousands of tokens whose order float32 rounding decides: no engine but the port itself would
# write the port's story.
FINAL_NORM = 6.0


def synthetic_checkpoint(config: Config, seed: int = SEED, shared_classifier: bool = True) -> Checkpoint:
    """Normal weights scaled by 1/sqrt(fan-in), so activations stay near 1 through every layer;
    norm weights are 1 but the final one (FINAL_NORM)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in weight_shapes(config).items():
        if name.startswith("rms"):
            arrays[name] = np.full(shape, FINAL_NORM if name == "rms_final" else 1.0, np.float32)
        elif name == "wcls" and shared_classifier:
            arrays[name] = arrays["token_embedding"]
        else:
            scale = EMBEDDING_SCALE if name == "token_embedding" else shape[-1] ** -0.5
            array = rng.standard_normal(shape, dtype=np.float32)
            array *= np.float32(scale)
            arrays[name] = array
    # BOS ends a story. Its row (input and, shared, classifier) a tenth of the others', so a
    # random model rarely ends one at once, as a trained model ends it only after a story.
    arrays["token_embedding"][1] *= np.float32(0.1)
    if not shared_classifier:
        arrays["wcls"][1] *= np.float32(0.1)
    return Checkpoint(config, Weights(**arrays), 0, shared_classifier)


def write_synthetic_checkpoint(path: Path, config: Config, version: int = 0, seed: int = SEED) -> Path:
    """The synthetic checkpoint of `config` in llama2.c format `version`, written to `path`."""
    write_atomic(path, write_checkpoint(synthetic_checkpoint(config, seed), version))
    return path


def synthetic_tokenizer_bytes(vocab_size: int) -> bytes:
    """A llama2.c tokenizer .bin with `vocab_size` pieces: llama2.c's three special pieces, the
    256 byte pieces, then distinct letter strings, so any story decodes to text."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
    pieces += [f"<0x{byte:02X}>".encode() for byte in range(min(256, vocab_size - 3))]
    letters = "abcdefghijklmnopqrstuvwxyz"
    index = 0
    while len(pieces) < vocab_size:
        word, rest = "", index
        while True:
            word, rest = letters[rest % 26] + word, rest // 26 - 1
            if rest < 0:
                break
        pieces.append((" " + word).encode() if index % 2 else word.encode())
        index += 1
    scores = [-float(i) for i in range(len(pieces))]
    return Tokenizer(pieces, scores, max(map(len, pieces))).to_bytes()
