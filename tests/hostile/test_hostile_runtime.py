"""Hostile checkpoints and tokenizers against `llama2np generate`: headers that claim gigabytes,
contexts of a billion positions, NaN weights, temperatures that overflow float32.

Every file is made here (small, with `struct` and the product's own checkpoint writer), every
run is a subprocess capped in address space and time, and every test checks the exit status,
the one sentence on standard error, the folder left as it was, and the peak memory.
"""

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_refused, folder_state, run_bounded
from llama2np.runtime.checkpoint import (
    EXPORT_HEADER_SIZE,
    MAGIC,
    Checkpoint,
    Config,
    Weights,
    weight_shapes,
)
from llama2np.runtime.generate import generate_tokens
from llama2np.runtime.model import make_model
from llama2np.runtime.sampler import Sampler
from llama2np.runtime.tokenizer import BOS
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from support import GOLDEN_T0, write_tokenizer

pytestmark = pytest.mark.hostile

# Python, NumPy and a small model stay near 40 MB resident; a command that believed a header
# (a KV cache for 10^9 positions, a vocabulary of 2^31 rows) would need gigabytes.
PEAK_RSS_MB = 160
SECONDS = 60  # generous: these runs take about a second each on an idle machine
SMALL = dict(dim=16, hidden_dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=40, seq_len=64)


def random_checkpoint(seed: int = 0, **sizes: int) -> Checkpoint:
    """A small model with random weights (norms at 1) and any header values in `sizes`."""
    config = Config(**{**SMALL, **sizes})
    rng = np.random.default_rng(seed)
    arrays = {name: (np.ones(shape) if name.startswith("rms") else rng.normal(0, 0.3, shape))
                    .astype(np.float32) for name, shape in weight_shapes(config).items()}
    arrays["wcls"] = arrays["token_embedding"]
    return Checkpoint(config, Weights(**arrays), 1, shared_classifier=True)


def write_model(folder: Path, checkpoint: Checkpoint, version: int = 1) -> tuple[Path, Path]:
    model, tokenizer = folder / "model.bin", folder / "tok.bin"
    model.write_bytes(write_checkpoint(checkpoint, version, group_size=16))
    write_tokenizer(tokenizer, checkpoint.config.vocab_size)
    return model, tokenizer


def generate(folder: Path, model: Path, tokenizer: Path, *flags: str) -> object:
    """`generate` bounded in memory and time, checked to have left the folder as it was."""
    before = folder_state(folder)
    outcome = run_bounded("generate", model, "-z", tokenizer, "-s", "7", *flags, cwd=folder,
                          timeout=SECONDS)
    assert folder_state(folder) == before
    assert outcome.peak_rss_mb < PEAK_RSS_MB, outcome.peak_rss_mb
    return outcome


@pytest.mark.parametrize("seq_len", [10**6, 10**9, 2**31 - 1])
@pytest.mark.parametrize("version", [1, 2])
def test_a_huge_context_costs_only_the_positions_used(tmp_path, seq_len, version):
    model, tokenizer = write_model(tmp_path, random_checkpoint(seq_len=seq_len), version)
    outcome = generate(tmp_path, model, tokenizer, "-n", "40", "-t", "0")
    assert outcome.status == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert outcome.stdout.strip(), outcome.stdout  # a story of single letters was written


def test_a_long_prompt_costs_memory_in_proportion_to_its_length(tmp_path):
    """A prompt of 7,000 tokens ("aa" 7,000 times) in a context of 2^31 positions: forwarded a
    batch at a time, its attention scores stay small (in one batch: 7,000^2 x 4 heads x 8 bytes,
    1.5 GB)."""
    model, tokenizer = write_model(tmp_path, random_checkpoint(seq_len=2**31 - 1))
    outcome = generate(tmp_path, model, tokenizer, "-i", "a" * 14_000, "-n", "14_010", "-t", "0")
    assert outcome.status == 0, outcome.stderr
    assert "a" * 13_000 in outcome.stdout


def test_a_version_0_export_of_a_huge_context_is_refused(tmp_path):
    """Version 0 stores RoPE tables for the whole context: for 20 million positions of a 21 KB
    model that would be 320 MB of them, so export says to use a version that stores none."""
    model, _ = write_model(tmp_path, random_checkpoint(seq_len=2 * 10**7))
    before = folder_state(tmp_path)
    outcome = run_bounded("export", model, tmp_path / "out.bin", cwd=tmp_path, timeout=SECONDS)
    assert_refused(outcome, 1, "context of 20,000,000 positions", "--version 1 or 2")
    assert outcome.peak_rss_mb < PEAK_RSS_MB, outcome.peak_rss_mb
    assert folder_state(tmp_path) == before


def header_v1(**sizes: int) -> bytes:
    """A version-1 header claiming `sizes` over SMALL, followed by the weights of SMALL."""
    c = {**SMALL, **sizes}
    fields = [c[k] for k in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                             "seq_len")]
    header = struct.pack("<Ii7iB", MAGIC, 1, *fields, 1).ljust(EXPORT_HEADER_SIZE, b"\0")
    return header + write_checkpoint(random_checkpoint(), 1)[EXPORT_HEADER_SIZE:]


def legacy(*fields: int) -> bytes:
    return struct.pack("<7i", *fields) + bytes(4096)


@pytest.mark.parametrize(("data", "phrases"), [
    (header_v1(vocab_size=2**31 - 1), ["vocab_size is 2,147,483,647, more than the 1,048,576"]),
    (header_v1(dim=2**30, n_heads=2**28, n_kv_heads=2**28), ["dim is 1,073,741,824, more"]),
    (header_v1(n_layers=2**31 - 1), ["n_layers is 2,147,483,647, more than the 1,024"]),
    (header_v1(hidden_dim=2**31 - 1, n_layers=2**31 - 1), ["hidden_dim", "n_layers"]),
    # Within those limits, but the weights they describe are not in the file:
    (header_v1(vocab_size=2**20), ["truncated", "needs 67,127,872 bytes but the file has 21,568"]),
    (header_v1(dim=2**16, hidden_dim=2**18, n_layers=2**10, n_heads=2**8, n_kv_heads=2**8),
     ["truncated"]),
    (header_v1(dim=-16), ["dim is -16"]),
    (header_v1(n_heads=3), ["does not divide"]),
    (header_v1(n_heads=16, n_kv_heads=16), ["odd"]),
    (header_v1(vocab_size=2), ["fewer than the 3 tokens"]),
    (header_v1(seq_len=0), ["seq_len is 0"]),
    (legacy(2**30, 2**30, 2**30, 2**28, 2**28, -(2**31), 2**31 - 1), ["inconsistent header"]),
    (legacy(2**16, 2**18, 2**10, 2**8, 2**8, -(2**20), 2**31 - 1), ["truncated", "version 0"]),
    (legacy(-1, -1, -1, -1, -1, -1, -1), ["inconsistent header"]),
    (struct.pack("<Ii", MAGIC, 3) + bytes(300), ["version 3"]),
    (struct.pack("<Ii", MAGIC, 1) + bytes(20), ["shorter than the 256-byte header"]),
    (b"\0" * 27, ["too short"]),
    (b"", ["empty"]),
], ids=["vocab", "dims", "layers", "hidden-x-layers", "vocab-fits", "all-fit", "negative",
        "heads", "odd-head", "vocab-2", "no-context", "legacy-huge", "legacy-fits",
        "legacy-negative", "version", "short-export", "short", "empty"])
def test_headers_claiming_more_than_the_file_are_refused(tmp_path, data, phrases):
    model = tmp_path / "model.bin"
    model.write_bytes(data)
    write_tokenizer(tmp_path / "tok.bin", 40)
    outcome = generate(tmp_path, model, tmp_path / "tok.bin")
    assert_refused(outcome, 1, "model.bin", *phrases)


@pytest.mark.parametrize(("group_size", "phrase"), [
    (0, "group size of 0"), (-64, "group size of -64"), (2**31 - 1, "do not divide"),
    (3, "do not divide"),
])
def test_q8_0_group_sizes_that_do_not_fit_are_refused(tmp_path, group_size, phrase):
    data = bytearray(write_checkpoint(random_checkpoint(), 2, group_size=16))
    struct.pack_into("<i", data, struct.calcsize("<Ii7iB"), group_size)
    model = tmp_path / "model.bin"
    model.write_bytes(data)
    write_tokenizer(tmp_path / "tok.bin", 40)
    assert_refused(generate(tmp_path, model, tmp_path / "tok.bin"), 1, "model.bin", phrase)


def tokenizer_bytes(max_token_length: int, entries: list[tuple[float, int, bytes]]) -> bytes:
    return struct.pack("<i", max_token_length) + b"".join(
        struct.pack("<fi", score, length) + piece for score, length, piece in entries)


@pytest.mark.parametrize(("data", "phrases"), [
    (tokenizer_bytes(2**31 - 1, []), ["maximum token length of 2147483647"]),
    (tokenizer_bytes(-5, []), ["maximum token length of -5"]),
    (tokenizer_bytes(8, [(0.0, 2**31 - 1, b"abc")]), ["corrupt after 0"]),
    (tokenizer_bytes(2**16, [(0.0, 2**16, b"abc")]), ["truncated after 0"]),
    (tokenizer_bytes(8, [(0.0, -1, b"")]), ["corrupt after 0"]),
    # A million empty entries in 8 MB: only the model's 40 are kept, the rest are counted.
    (tokenizer_bytes(1, [(0.0, 0, b"")] * 10**6), ["holds 1000000 tokens", "vocabulary has 40"]),
], ids=["max-length", "negative-max", "huge-token", "truncated-token", "negative-token",
        "million-tokens"])
def test_tokenizers_claiming_more_than_the_file_are_refused(tmp_path, data, phrases):
    model, tokenizer = write_model(tmp_path, random_checkpoint())
    tokenizer.write_bytes(data)
    outcome = generate(tmp_path, model, tokenizer)
    assert_refused(outcome, 1, "tok.bin", *phrases)


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("tensor", ["wcls", "w2", "rms_att"])
@pytest.mark.parametrize("temperature", ["0", "1", "1e-40"])
def test_broken_weights_end_the_story_with_a_sentence(tmp_path, value, tensor, temperature):
    checkpoint = random_checkpoint()
    if tensor == "wcls":  # the shared classifier is the embedding: one row is enough
        checkpoint.weights.token_embedding[5, 3] = value
    else:
        getattr(checkpoint.weights, tensor)[1].flat[7] = value
    model, tokenizer = write_model(tmp_path, checkpoint)
    outcome = generate(tmp_path, model, tokenizer, "-n", "20", "-t", temperature)
    sentence = assert_refused(outcome, 1, "the model produced", "at position 0",
                              "run llama2np validate")
    assert "NaN" in sentence or "infinite" in sentence
    assert "Warning" not in outcome.stderr, outcome.stderr


def test_nan_reached_mid_story_names_its_position(tmp_path):
    """NaN in the embedding of one token only (the classifier is separate): the story runs until
    the model first feeds that token, at a position found here by running the clean model."""
    checkpoint = random_checkpoint()
    checkpoint.shared_classifier = False
    checkpoint.weights.wcls = checkpoint.weights.token_embedding.copy()
    clean = make_model(checkpoint)
    sampler = Sampler(SMALL["vocab_size"], 1.0, 0.9, 7, clean.logit_bound)  # as `-t 1 -s 7`
    story = [BOS, *generate_tokens(clean, [BOS], sampler, SMALL["seq_len"])]
    position = next(i for i in range(2, len(story)) if story[i] not in story[:i])
    checkpoint.weights.token_embedding[story[position]] = math.nan
    model, tokenizer = write_model(tmp_path, checkpoint)
    outcome = generate(tmp_path, model, tokenizer, "-n", "64", "-t", "1")
    assert_refused(outcome, 1, f"the model produced NaN at position {position};")
    assert outcome.stdout  # the story so far was written before the sentence


@pytest.mark.parametrize("temperature", ["1e-40", "1e-38", "1e-30"])
def test_a_vanishing_temperature_writes_the_greedy_story(model_dir, golden, tmp_path, temperature):
    """1e-40 and 1e-38 would overflow float32 (run.c samples from NaN there) and go greedy;
    1e-30 is sampled as usual, and a softmax that sharp is greedy too."""
    outcome = generate(tmp_path, model_dir / "stories260K.bin", model_dir / "tok512.bin",
                       "-t", temperature)
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout == golden(GOLDEN_T0) + "\n"
    assert "Warning" not in outcome.stderr and "Traceback" not in outcome.stderr


@pytest.mark.parametrize("temperature", ["1e-39", "1e-45"])
def test_the_probabilities_at_a_vanishing_temperature_are_its_limit(model_dir, tmp_path,
                                                                    temperature):
    """--probs at a temperature whose logits overflow float32: each line is JSON (no NaN), the
    token written has all the probability, and nothing but the statistics reaches stderr."""
    outcome = generate(tmp_path, model_dir / "stories260K.bin", model_dir / "tok512.bin",
                       "-t", temperature, "-n", "30", "--probs")
    assert outcome.status == 0, outcome.stderr
    lines = [json.loads(line, parse_constant=pytest.fail) for line in outcome.stdout.splitlines()]
    assert len(lines) == 30 and all(line["p"] == 1.0 for line in lines)
    assert outcome.stderr.startswith("achieved tok/s") and len(outcome.stderr.splitlines()) == 1


def test_a_temperature_beyond_float32_is_sampled_quietly(model_dir, tmp_path):
    """1e39 is infinite in float32, as in run.c: every token equally likely, and no warning."""
    outcome = generate(tmp_path, model_dir / "stories260K.bin", model_dir / "tok512.bin",
                       "-t", "1e39", "-n", "30")
    assert outcome.status == 0, outcome.stderr
    assert outcome.stderr.startswith("achieved tok/s") and len(outcome.stderr.splitlines()) == 1


def test_bench_of_a_model_that_ends_its_story_at_once_is_a_sentence(tmp_path):
    """A model whose likeliest first token is BOS: the greedy story is empty, nothing to time."""
    checkpoint = random_checkpoint()
    checkpoint.weights.wcls = np.zeros_like(checkpoint.weights.token_embedding)
    checkpoint.weights.wcls[1] = 1.0  # BOS's logit is the only one above zero
    checkpoint.shared_classifier = False
    model, _ = write_model(tmp_path, checkpoint)
    outcome = run_bounded("bench", model, "-n", "2", "--repeat", "1", "--prompt-tokens", "1",
                          cwd=tmp_path, timeout=SECONDS)
    assert_refused(outcome, 1, "greedy story ends at once", "nothing to time")


def test_validate_says_several_problems_in_one_sentence(tmp_path):
    checkpoint = random_checkpoint()
    checkpoint.weights.wq[0, 0, 0] = np.nan
    checkpoint.weights.w1[1, 2, 3] = np.inf
    checkpoint.weights.w2[:] = 0
    model, tokenizer = write_model(tmp_path, checkpoint)
    outcome = run_bounded("validate", model, "-z", tokenizer, cwd=tmp_path, timeout=SECONDS)
    sentence = assert_refused(outcome, 1, "tensor wq holds 1 NaN", "and 2 more problems")
    assert [line for line in outcome.stderr.splitlines() if line.startswith("llama2np:")] == [sentence]


def test_a_character_the_tokenizer_cannot_spell_is_refused(tmp_path):
    """A vocabulary of letters, too small for byte fallback: run.c would index past it."""
    model, tokenizer = write_model(tmp_path, random_checkpoint())
    outcome = generate(tmp_path, model, tokenizer, "-i", "ab~")
    assert_refused(outcome, 1, "'~'", "40 tokens", "neither find nor spell")
