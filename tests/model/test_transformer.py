"""What every engine shares: the engine chosen by the model's size, a KV cache that grows with
the positions a story reaches and gives the logits of one sized for the whole context, and RoPE
tables of any length."""

import dataclasses

import numpy as np
import pytest
from fuzzing import cases
from hypothesis import given
from hypothesis import strategies as st
from llama2np.runtime.checkpoint import Config
from llama2np.runtime.model import Float32Transformer, FusedTransformer, make_model
from llama2np.runtime.model.rope import rope_rotations
from llama2np.tools.models.synthetic import synthetic_checkpoint

# A 32,000-token vocabulary makes the float64 engine's copies too large for its budget.
NARROW = Config(dim=64, hidden_dim=172, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32000,
                seq_len=96)


@pytest.fixture(scope="module")
def narrow():
    return synthetic_checkpoint(NARROW, seed=11)


def test_the_engine_follows_the_model_size(narrow, checkpoint):
    assert type(make_model(narrow)) is Float32Transformer
    assert type(make_model(checkpoint)) is FusedTransformer  # stories260K keeps float64
    assert type(make_model(narrow, precision=64)) is FusedTransformer
    assert type(make_model(checkpoint, precision=32)) is Float32Transformer
    with pytest.raises(ValueError, match="neither 32 nor 64"):
        make_model(checkpoint, precision=16)



@given(calls=st.lists(st.tuples(st.integers(0, 1_000), st.integers(1, 40)), min_size=1,
                      max_size=12),
       seed=st.integers(0, 2**32 - 1))
@cases(20)
@pytest.mark.parametrize("precision", [64, 32])
def test_a_growing_cache_gives_the_logits_of_a_whole_one(checkpoint, precision, calls, seed):
    """Batches and single steps at random positions (going back over what was written, or on
    to the end of what was written): the cache that doubles as it goes, in a model whose header
    claims 10^9 positions, gives the same logits bit for bit as one that held the whole
    context from the start, and never holds more than twice the positions reached."""
    c = checkpoint.config
    tokens = np.random.default_rng(seed).integers(0, c.vocab_size, c.seq_len).tolist()
    huge = dataclasses.replace(checkpoint, config=dataclasses.replace(c, seq_len=10**9))
    growing, whole = make_model(huge, precision), make_model(checkpoint, precision)
    whole.reserve(c.seq_len)
    written = reached = 0  # positions below `written` hold this case's keys and values
    for where, size in calls:
        pos = where % (min(written, c.seq_len - 1) + 1)
        batch = tokens[pos : pos + size]
        np.testing.assert_array_equal(growing.forward(batch, pos), whole.forward(batch, pos))
        written = pos + len(batch)
        reached = max(reached, written)
    assert reached <= growing.positions <= max(16, 2 * reached)


@pytest.mark.parametrize("positions", [1, 16, 17, 300, 511])
def test_rope_tables_of_any_length_agree_with_the_whole_context(checkpoint, positions):
    short, whole = rope_rotations(checkpoint.config, positions), rope_rotations(
        checkpoint.config, checkpoint.config.seq_len)
    for part, full in zip(short, whole, strict=True):
        np.testing.assert_array_equal(part, full[:positions])
