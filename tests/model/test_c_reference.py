"""The float32 engine against run.c's forward pass written again in C (tests/c/forward_reference.c),
on synthetic models of Llama 2's 32,000 tokens in every llama2.c version."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from llama2np.runtime.checkpoint import Config, read_checkpoint
from llama2np.runtime.model import make_model
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.models.synthetic import synthetic_checkpoint
from support import compile_c

SOURCE = Path(__file__).resolve().parents[1] / "c" / "forward_reference.c"
# Grouped-query attention, a hidden size that is not a multiple of 64 (as stories260K's 172),
# and the vocabulary of Llama 2, at a width that keeps the test quick.
CONFIG = Config(dim=64, hidden_dim=172, n_layers=2, n_heads=8, n_kv_heads=4, vocab_size=32000,
                seq_len=64)
TOKENS = [1, 415, 4123, 29889, 13, 31999, 2, 20, 500, 7, 3, 29871, 1000, 4, 4, 4]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return compile_c(SOURCE, tmp_path_factory.mktemp("c"))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("version", [0, 1, 2])
def test_the_float32_engine_agrees_with_the_c_reference(reference, tmp_path, version, shared):
    path = tmp_path / f"v{version}.bin"
    path.write_bytes(write_checkpoint(synthetic_checkpoint(CONFIG, shared_classifier=shared), version))
    model = make_model(read_checkpoint(path.read_bytes()), 32)
    out = subprocess.run([reference, path, "logits", *map(str, TOKENS)], capture_output=True, check=True)
    expected = np.frombuffer(out.stdout, "<f4").reshape(len(TOKENS), CONFIG.vocab_size)
    stepped = np.stack([model.forward([token], pos)[0] for pos, token in enumerate(TOKENS)])
    scale = np.abs(expected).max()
    assert np.abs(stepped - expected).max() < 1e-4 * scale
    batched = make_model(read_checkpoint(path.read_bytes()), 32).forward(TOKENS, 0)
    assert np.abs(batched - expected).max() < 1e-4 * scale
    # The greedy story: the same tokens, position for position.
    steps = CONFIG.seq_len
    out = subprocess.run([reference, path, "greedy", str(steps)], capture_output=True, text=True, check=True)
    theirs = [int(t) for t in out.stdout.split()]
    model = make_model(read_checkpoint(path.read_bytes()), 32)
    ours, token = [], 1
    for pos in range(steps):
        token = int(np.argmax(model.forward([token], pos)[0]))
        if token == 1:
            break
        ours.append(token)
    assert ours == theirs and len(ours) > 10
