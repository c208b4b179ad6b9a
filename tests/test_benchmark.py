"""The benchmark: settings that measure nothing are refused, and the straightforward port it
measures against is sized by the positions a run uses."""

from dataclasses import replace

import numpy as np
import pytest
from hostile import assert_refused, run_bounded
from llama2np.runtime.baseline import BaselineTransformer
from llama2np.runtime.benchmark import PORT, measure
from llama2np.runtime.errors import UsageError
from llama2np.runtime.generate import generate_tokens
from llama2np.runtime.model import make_model
from llama2np.runtime.sampler import Sampler
from llama2np.runtime.tokenizer import BOS
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.models.synthetic import synthetic_checkpoint

PORT_ONLY = (PORT,)


@pytest.mark.parametrize(("flags", "phrase"), [
    (["-n", "0"], "steps 0"),
    (["-n", "1"], "steps 1"),
    (["--repeat", "0"], "repeat 0"),
    (["--repeat", "-3"], "repeat -3"),
    (["--prompt-tokens", "0"], "prompt tokens 0"),
    (["--prompt-tokens", "512"], "prompt tokens 512"),
])
def test_bench_refuses_settings_that_measure_nothing(model_dir, flags, phrase):
    outcome = run_bounded("bench", model_dir / "stories260K.bin", *flags, timeout=120)
    assert_refused(outcome, 2, phrase, "use")


def test_a_context_too_short_to_measure_gets_no_advice_it_would_refuse(checkpoint, tmp_path):
    """A 1-token context fits no setting bench accepts (-n must be 2 or more), so the sentence
    says the model cannot be measured rather than offering `-n 1`."""
    short = tmp_path / "short.bin"
    short.write_bytes(write_checkpoint(synthetic_checkpoint(replace(checkpoint.config, seq_len=1)), 0))
    sentence = assert_refused(run_bounded("bench", short, timeout=120), 1, "1-token context",
                              "too short to measure")
    assert "-n 1" not in sentence


def test_the_whole_context_decodes_the_whole_greedy_story_and_no_more(checkpoint):
    c = checkpoint.config
    with pytest.raises(UsageError, match=f"steps {c.seq_len + 1} is beyond the {c.seq_len}-token "
                       "context of the model; use -n 512 or fewer."):
        measure(checkpoint, steps=c.seq_len + 1, prompt_length=4, repeats=1, engines=PORT_ONLY)
    results = measure(checkpoint, steps=c.seq_len, prompt_length=4, repeats=1, engines=PORT_ONLY)
    # The port decodes the greedy story of the whole context, as the runtime writes it.
    story = generate_tokens(make_model(checkpoint), [BOS], Sampler(c.vocab_size, 0.0, 0.9, 1),
                            c.seq_len)
    assert results[PORT]["decode_tokens"] == len(list(story))


def test_rates_are_positive_and_count_what_ran(checkpoint):
    results = measure(checkpoint, steps=12, prompt_length=5, repeats=2)
    for figures in results.values():
        assert figures["decode_tokens"] == 12
        assert figures["decode_tokens_per_second"] > 0
        assert figures["prompt_tokens_per_second"] > 0 and figures["first_token_ms"] > 0


def test_port_is_sized_by_the_positions_asked_for(checkpoint):
    port = BaselineTransformer(checkpoint, positions=16)
    assert port.key_cache.shape[1] == port.value_cache.shape[1] == port.cos.shape[0] == 16
    with pytest.raises(ValueError, match="outside"):
        port.forward([1], 16)
    whole = BaselineTransformer(checkpoint, positions=10**9)
    assert whole.key_cache.shape[1] == checkpoint.config.seq_len


def test_port_computes_the_runtime_s_logits(checkpoint):
    # float32 against the runtime's float64: the same model up to float32 rounding.
    tokens = [1, 403, 407, 261, 378, 429, 434, 271]
    port = BaselineTransformer(checkpoint).forward(tokens, 0)
    runtime = make_model(checkpoint).forward(tokens, 0)
    np.testing.assert_allclose(port, runtime, rtol=0, atol=2e-4)


def test_measure_refuses_directly_too(checkpoint):
    with pytest.raises(UsageError, match="--repeat 0"):
        measure(checkpoint, repeats=0)
