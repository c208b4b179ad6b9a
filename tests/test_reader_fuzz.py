"""Fuzzing the checkpoint and tokenizer readers with Hypothesis: whatever bytes they are given,
they return a model or raise the product's own error, and memory follows the file, not its
header. Also: a model that grows its KV cache gives the logits of one sized for the context.

Inputs are any bytes, and mutations of the real stories260K.bin (in all three llama2.c
versions) and tok512.bin: header fields set to edge values, bytes flipped, files cut short or
extended. HYPOTHESIS_PROFILE=thorough runs ten times as many cases.
"""

import math
import struct
import tracemalloc
from functools import cache

import numpy as np
from fuzzing import cases
from hypothesis import given
from hypothesis import strategies as st
from llama2np.runtime.checkpoint import (
    EXPORT_PREFIX,
    MAGIC,
    Checkpoint,
    Config,
    Weights,
    read_checkpoint,
    weight_shapes,
)
from llama2np.runtime.errors import CheckpointError, Llama2npError, PromptError, TokenizerError
from llama2np.runtime.generate import Story
from llama2np.runtime.model import make_model
from llama2np.runtime.tokenizer import Tokenizer
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from support import write_tokenizer

# Values a hostile header field would hold: signs, powers of two, the limits and just past them.
EDGE_INTS = [0, 1, 2, 3, -1, -2, 7, 8, 64, 512, 1 << 10, (1 << 10) + 1, 1 << 16, 1 << 20,
             (1 << 20) + 1, 1 << 24, 1 << 30, 2**31 - 1, -(2**31)]
EXPORT_FIELDS = [4, *range(8, 36, 4), EXPORT_PREFIX.size]  # version, 7 sizes, group size
LEGACY_FIELDS = list(range(0, 28, 4))


@cache
def stories_versions(model_dir) -> tuple[bytes, bytes, bytes]:
    """stories260K in llama2.c versions 0, 1 and 2."""
    original = (model_dir / "stories260K.bin").read_bytes()
    parsed = read_checkpoint(original)
    return original, write_checkpoint(parsed, 1), write_checkpoint(parsed, 2)


def field_edit() -> st.SearchStrategy:
    value = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-(2**31), 2**31 - 1))
    return st.tuples(st.just("field"), st.integers(0, 100), value)


MUTATIONS = st.lists(st.one_of(
    field_edit(),
    st.tuples(st.just("flip"), st.integers(0, 2**21), st.integers(1, 255)),
    st.tuples(st.just("flip-header"), st.integers(0, 300), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 2**21), st.just(0)),
    st.tuples(st.just("extend"), st.integers(1, 4096), st.integers(0, 255)),
), min_size=1, max_size=4)


def mutate(data: bytes, mutations: list, fields: list[int]) -> bytes:
    """Apply (kind, where, value) edits; `where` is taken modulo what it indexes."""
    data = bytearray(data)
    for kind, where, value in mutations:
        if kind == "field" and len(data) >= fields[where % len(fields)] + 4:
            struct.pack_into("<i", data, fields[where % len(fields)], value)
        elif kind in ("flip", "flip-header") and data:
            data[where % len(data)] ^= value
        elif kind == "truncate":
            del data[where % (len(data) + 1):]
        elif kind == "extend":
            data += bytes([value]) * where
    return bytes(data)


def read_bounded(data: bytes) -> Checkpoint | None:
    """read_checkpoint's result (None for its error), checking that it allocated no more than
    a few times the file: the header's sizes are checked against the file before anything is."""
    tracemalloc.start()
    try:
        return read_checkpoint(data, "fuzzed.bin")
    except CheckpointError as error:
        assert str(error).startswith("fuzzed.bin"), error
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= 8 * len(data) + (1 << 20), (peak, len(data))  # Q8_0 -> float32: 4-5x


@given(st.one_of(st.binary(max_size=4096),
                 st.binary(max_size=4096).map(lambda b: struct.pack("<I", MAGIC) + b)))
@cases(1000)
def test_any_bytes_are_a_checkpoint_or_its_error(data):
    read_bounded(data)


@given(version=st.sampled_from([0, 1, 2]), mutations=MUTATIONS)
@cases(600)
def test_mutated_stories260k_is_a_checkpoint_or_its_error(model_dir, version, mutations):
    fields = LEGACY_FIELDS if version == 0 else EXPORT_FIELDS
    data = mutate(stories_versions(model_dir)[version], mutations, fields)
    parsed = read_bounded(data)
    if parsed is not None:  # what is accepted is consistent with the file it came from
        c = parsed.config
        assert not c.problems()
        assert sum(math.prod(s) for s in weight_shapes(c).values()) <= 4 * len(data)


# A model small enough to build and run for every case: what the reader accepts, the runtime
# runs, ending in a story or a sentence.
SMALL = Config(dim=16, hidden_dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=40,
               seq_len=32)


@cache
def small_model(version: int) -> bytes:
    rng = np.random.default_rng(1)
    arrays = {name: rng.normal(0, 0.5, shape).astype(np.float32)
              for name, shape in weight_shapes(SMALL).items()}
    return write_checkpoint(Checkpoint(SMALL, Weights(**arrays), version, False), version,
                            group_size=16)


@given(version=st.sampled_from([0, 1, 2]), mutations=MUTATIONS,
       special=st.sampled_from([math.nan, math.inf, -math.inf, 3e38, 0.0]),
       where=st.integers(0, 2**20), temperature=st.sampled_from([0.0, 1.0, 1e-40]))
@cases(300)
def test_accepted_checkpoints_run_or_say_why(tmp_path_factory, version, mutations, special,
                                             where, temperature):
    data = bytearray(mutate(small_model(version), mutations,
                            LEGACY_FIELDS if version == 0 else EXPORT_FIELDS))
    if len(data) >= 512:  # and one float of the weights set to a value that breaks arithmetic
        struct.pack_into("<f", data, 256 + (where % ((len(data) - 256) // 4)) * 4, special)
    parsed = read_bounded(bytes(data))
    if parsed is None or parsed.config.vocab_size != SMALL.vocab_size:
        return  # refused, or a model no tokenizer here fits
    path = tmp_path_factory.getbasetemp() / "tok40.bin"
    if not path.exists():
        write_tokenizer(path, SMALL.vocab_size)
    tokenizer = Tokenizer.load(path, SMALL.vocab_size)
    try:
        text = Story(make_model(parsed), tokenizer, "", temperature=temperature, seed=5,
                     steps=12).text()
    except Llama2npError as error:
        assert "the model produced" in str(error), error
        return
    assert isinstance(text, str)


# -- the tokenizer --------------------------------------------------------------------------

def tokenizer_fields(data: bytes) -> list[int]:
    """Offsets of the max_token_length field and of every entry's score and length fields."""
    fields, offset = [0], 4
    while offset + 8 <= len(data):
        length = struct.unpack_from("<i", data, offset + 4)[0]
        fields += [offset, offset + 4]
        offset += 8 + length
    return fields


TEXT = "Once upon a time, Lily saw a 🐸 and said \"hi~\"."


def check_tokenizer(data: bytes, vocab_size: int | None, measure: bool) -> None:
    """A tokenizer or its error; a tokenizer encodes and decodes, or refuses the text. With
    `measure`, its peak memory is checked too (tracing costs ~10 ms a case)."""
    if measure:
        tracemalloc.start()
    try:
        tokenizer = Tokenizer.from_bytes(data, vocab_size, "fuzzed.bin")
    except TokenizerError as error:
        assert str(error).startswith("fuzzed.bin"), error
        return
    finally:
        if measure:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            # The file's copy and ~200 bytes of Python objects per token kept.
            assert peak <= 2 * len(data) + 300 * (vocab_size or len(data) // 8) + (1 << 20)
    assert len(tokenizer.vocab) == (vocab_size or len(tokenizer.vocab)) <= len(data) // 8
    try:
        tokens = tokenizer.encode(TEXT)
    except PromptError:
        return
    assert all(0 <= t < tokenizer.vocab_size for t in tokens)
    assert isinstance(tokenizer.decode(tokens), str)


@given(data=st.binary(max_size=2048), vocab_size=st.one_of(st.none(), st.integers(0, 600)))
@cases(1000)
def test_any_bytes_are_a_tokenizer_or_its_error(data, vocab_size):
    check_tokenizer(data, vocab_size, measure=True)


@given(mutations=MUTATIONS, vocab_size=st.sampled_from([None, 512, 511, 513, 3]),
       score=st.sampled_from([math.nan, math.inf, -math.inf, -1e10, 1e30]),
       entry=st.integers(0, 10_000))
@cases(600)
def test_mutated_tok512_is_a_tokenizer_or_its_error(model_dir, mutations, vocab_size, score,
                                                   entry):
    original = (model_dir / "tok512.bin").read_bytes()
    fields = tokenizer_fields(original)
    data = bytearray(mutate(original, mutations, fields))
    scores = fields[1::2]
    if scores[entry % len(scores)] + 4 <= len(data):
        struct.pack_into("<f", data, scores[entry % len(scores)], score)
    check_tokenizer(bytes(data), vocab_size, measure=False)
