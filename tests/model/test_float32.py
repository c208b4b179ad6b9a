"""Models of stories15M's kind and larger: the float32 engine, chosen by size, writes the
straightforward float32 port's stories and keeps memory near the checkpoint's size.

The synthetic models keep llama2.c's 32,000-token vocabulary (what makes the large models large:
the embedding, the classifier, the layer-0 table) with a small width, so each test takes
seconds. The real 15M, 42M and 110M shapes are measured by `llama2np bench --shape`.
"""

import numpy as np
import pytest
from hostile import run_bounded
from llama2np.runtime.baseline import BaselineTransformer
from llama2np.runtime.checkpoint import Config, read_checkpoint
from llama2np.runtime.generate import generate_tokens
from llama2np.runtime.model import make_model
from llama2np.runtime.sampler import Sampler
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.models.synthetic import (
    synthetic_checkpoint,
    synthetic_tokenizer_bytes,
    write_synthetic_checkpoint,
)

VOCAB = 32000
# Grouped-query attention (4 query heads share 2 key/value heads) and an odd hidden width, so
# every index of the engine is exercised; 64 wide keeps a story to a fraction of a second.
NARROW = Config(dim=64, hidden_dim=172, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=VOCAB,
                seq_len=96)
WIDER = Config(dim=96, hidden_dim=256, n_layers=3, n_heads=6, n_kv_heads=6, vocab_size=VOCAB,
               seq_len=64)


@pytest.fixture(scope="module")
def narrow():
    return synthetic_checkpoint(NARROW, seed=11)


def story(model: object, checkpoint, prompt: list[int], temperature: float, seed: int,
          steps: int) -> list[int]:
    sampler = Sampler(checkpoint.config.vocab_size, temperature, 0.9, seed,
                      getattr(model, "logit_bound", None))
    return list(generate_tokens(model, prompt, sampler, steps))


@pytest.mark.parametrize("config", [NARROW, WIDER], ids=["gqa", "mha"])
@pytest.mark.parametrize("temperature,seed", [(0.0, 1), (1.0, 42), (0.8, 133742)])
def test_stories_equal_the_straightforward_port(config, temperature, seed):
    """Greedy and seeded, with a prompt processed as one batch: the same tokens as run.c's
    arithmetic one position at a time."""
    ckpt = synthetic_checkpoint(config, seed=5)
    prompt = [1, 3000, 17, 29999, 400]
    steps = config.seq_len
    ours = story(make_model(ckpt), ckpt, prompt, temperature, seed, steps)
    port = story(BaselineTransformer(ckpt), ckpt, prompt, temperature, seed, steps)
    assert len(ours) > 20
    assert ours == port


def test_float64_engine_writes_the_same_stories(narrow):
    """Both engines agree on a model either could run: the choice is one of memory and speed."""
    for temperature, seed in ((0.0, 1), (1.0, 7)):
        assert (story(make_model(narrow, precision=64), narrow, [1], temperature, seed, 80)
                == story(make_model(narrow), narrow, [1], temperature, seed, 80))


def test_logits_are_the_ports_up_to_float32_rounding(narrow):
    model, port = make_model(narrow), BaselineTransformer(narrow)
    tokens = [1, 5, 31999, 250, 250, 7]
    batch = make_model(narrow).forward(tokens, 0)
    for pos, token in enumerate(tokens):
        ours, theirs = model.forward([token], pos)[0], port.step(token, pos)
        assert ours.dtype == np.float32
        scale = float(np.abs(theirs).max())
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * scale)
        np.testing.assert_allclose(batch[pos], theirs, rtol=0, atol=1e-5 * scale)
        assert np.abs(ours).max() <= model.logit_bound


@pytest.mark.parametrize("version", [0, 1, 2])
def test_every_format_gives_the_port_story(narrow, version):
    """Versions 0 and 1 are read as views of the file's bytes; version 2 (Q8_0) dequantised
    layer by layer into one array. Either way the story is the port's on the same weights."""
    data = write_checkpoint(narrow, version)
    loaded = read_checkpoint(data)
    if version < 2:
        buffer = np.frombuffer(data, np.uint8)
        assert np.shares_memory(loaded.weights.wq, buffer)
        assert np.shares_memory(loaded.weights.token_embedding, buffer)
    assert (story(make_model(loaded), loaded, [1], 1.0, 3, 64)
            == story(BaselineTransformer(loaded), loaded, [1], 1.0, 3, 64))


def test_the_engine_copies_no_weight(narrow):
    """Memory follows the checkpoint: every weight the engine reads is the checkpoint's array."""
    model = make_model(narrow)
    assert model.weights is narrow.weights
    copies = [name for name, value in vars(model).items()
              if isinstance(value, np.ndarray) and value.nbytes > 64 * NARROW.dim * 4]
    assert copies == [], copies


def test_cache_grows_with_the_story_and_keeps_the_logits(narrow):
    growing = make_model(narrow)
    assert growing.positions < NARROW.seq_len
    whole = make_model(narrow)
    whole.reserve(NARROW.seq_len)
    for pos in range(40):
        np.testing.assert_array_equal(growing.forward([pos + 3], pos), whole.forward([pos + 3], pos))
    assert growing.positions < NARROW.seq_len


def test_nan_weights_reach_the_sampler_as_nan(narrow):
    import copy

    broken = copy.deepcopy(narrow)
    broken.weights.w2[1, 3, 5] = np.nan
    with np.errstate(all="raise"):
        logits = make_model(broken).forward([1, 2], 0)
    assert np.isnan(logits).all()


@pytest.mark.parametrize("version", [1, 2])
def test_peak_memory_of_generate_follows_the_checkpoint(tmp_path, version):
    """`llama2np generate` on a 46 MB model (the 32,000 vocabulary, dim 256, 4 layers) stays
    within 1.5x the checkpoint's float32 size + 100 MB, measured as the process's peak resident
    set; the float64 engine needed about 10x. A Q8_0 file (version 2) is dequantised into float32
    arrays once, layer by layer, and keeps the same bound."""
    shape = Config(dim=256, hidden_dim=688, n_layers=4, n_heads=8, n_kv_heads=8,
                   vocab_size=VOCAB, seq_len=256)
    model = write_synthetic_checkpoint(tmp_path / "model.bin", shape, version=version)
    tokenizer = tmp_path / "tokenizer.bin"
    tokenizer.write_bytes(synthetic_tokenizer_bytes(VOCAB))
    float32_mb = len(write_checkpoint(synthetic_checkpoint(shape), 1)) / 2**20
    assert float32_mb > 40
    outcome = run_bounded("generate", model, "-z", tokenizer, "-n", "256", "-t", "1", "-s", "5",
                          "-i", "abc def")
    assert outcome.status == 0, outcome.stderr
    assert len(outcome.stdout) > 100
    assert outcome.peak_rss_mb <= 1.5 * float32_mb + 100, (outcome.peak_rss_mb, float32_mb)


def test_pyodide_s_products_write_the_same_story(narrow, monkeypatch):
    """The page runs the float32 engine's products as einsum (no BLAS there); on CPython the
    same code with those products writes the port's story too."""
    from llama2np.runtime.model import float32 as engine

    expected = story(BaselineTransformer(narrow), narrow, [1, 77, 78], 1.0, 21, NARROW.seq_len)
    monkeypatch.setattr(engine, "matvec", engine.einsum_matvec)
    monkeypatch.setattr(engine, "matmat", engine.einsum_matmat)
    assert story(make_model(narrow), narrow, [1, 77, 78], 1.0, 21, NARROW.seq_len) == expected
