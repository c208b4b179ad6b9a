"""The fast forward pass against the simple reference, batched against step-by-step."""

import numpy as np
from llama2np.runtime.model import make_model
from reference import ReferenceModel


def test_logits_match_simple_reference_over_300_positions(checkpoint, tokenizer, model):
    # A real story's tokens, so attention sees realistic patterns across many positions.
    text = ("Once upon a time, there was a little girl named Lily. She loved to play outside. " * 12)
    tokens = tokenizer.encode(text)[:300]
    assert len(tokens) == 300
    reference = ReferenceModel(checkpoint)
    worst = 0.0
    for pos, token in enumerate(tokens):
        fast = model.forward([token], pos)[0]
        slow = reference.step(token, pos)
        worst = max(worst, float(np.abs(fast - slow).max()))
    assert worst < 1e-5, worst


def test_prompt_batch_equals_single_steps(checkpoint, tokenizer):
    tokens = tokenizer.encode("The cat sat on the mat. It was a sunny day and the cat was happy.")
    batched = make_model(checkpoint).forward(tokens, 0)
    single = make_model(checkpoint)
    stepped = np.stack([single.forward([t], pos)[0] for pos, t in enumerate(tokens)])
    assert batched.shape == (len(tokens), checkpoint.config.vocab_size)
    np.testing.assert_allclose(batched, stepped, rtol=0, atol=1e-12)
    # float64 keeps batch and single steps equal once rounded to the sampler's float32
    assert (batched.astype(np.float32) == stepped.astype(np.float32)).mean() > 0.999


def test_batch_in_the_middle_overwrites_the_cache(checkpoint, tokenizer):
    """A forward at positions already written replaces them; the cache must not remember them."""
    tokens = tokenizer.encode("Tom had a red ball and a blue kite.")
    model = make_model(checkpoint)
    model.forward(tokens[:5], 0)
    model.forward([7, 8, 9], 5)  # a wrong guess at positions 5..7
    again = model.forward(tokens[5:], 5)
    fresh = make_model(checkpoint).forward(tokens, 0)[5:]
    np.testing.assert_allclose(again, fresh, rtol=0, atol=1e-12)


def test_positions_outside_the_context_are_refused(model):
    import pytest

    with pytest.raises(ValueError, match="outside the context"):
        model.forward([1, 2], model.config.seq_len - 1)


def test_scores_too_large_for_exp2_are_shifted_and_stay_exact(checkpoint, tokenizer):
    """A layer with huge attention scores: the unshifted exponentials overflow, the step notices
    and takes itself again with each row's maximum subtracted, as the reference always does."""
    import copy

    loud = copy.deepcopy(checkpoint)
    loud.weights.wq[2] *= 300.0  # scores around +-10,000: 2^score overflows float64
    model = make_model(loud)
    shifted = []
    unshifted_step = model._step

    def counting_step(token, pos, shift):
        shifted.append(shift)
        return unshifted_step(token, pos, shift)

    model._step = counting_step
    reference = ReferenceModel(loud)
    for pos, token in enumerate(tokenizer.encode("Lily saw a big red ball in the park.")):
        fast = model.forward([token], pos)[0]
        slow = reference.step(token, pos)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-5)  # as the test above
    assert any(shifted) and not all(shifted)


def test_cache_grows_with_the_positions_used_and_keeps_the_logits(checkpoint, tokenizer):
    """The KV cache and RoPE tables start small and double as positions are reached; a model
    whose cache held the whole context from the start gives the same logits, bit for bit."""
    text = "Once upon a time, there was a little girl named Lily. She loved to play outside. " * 12
    tokens = tokenizer.encode(text)[:300]
    growing, whole = make_model(checkpoint), make_model(checkpoint)
    whole.reserve(checkpoint.config.seq_len)
    assert growing.positions < 32 and growing.caches[0].rows.shape[0] == growing.positions
    pos = 0
    for size in [5, 1, 1, 20, 1, 60, 3, 1, 200, 8]:  # batches and single steps across the growths
        chunk = tokens[pos : pos + size]
        np.testing.assert_array_equal(growing.forward(chunk, pos), whole.forward(chunk, pos))
        pos += size
    assert pos == 300 and 300 <= growing.positions < checkpoint.config.seq_len


def test_a_context_of_a_billion_positions_allocates_only_what_is_used(checkpoint):
    import dataclasses

    big = dataclasses.replace(checkpoint, config=dataclasses.replace(checkpoint.config,
                                                                     seq_len=10**9))
    model = make_model(big)
    model.forward([1, 2, 3], 0)
    model.forward([4], 40)
    assert model.positions == 41
    assert model.rotate_q.shape[0] == model.positions == model._scores.shape[-1]
