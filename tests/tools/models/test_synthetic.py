"""The benchmark's synthetic models: llama2.c's published shapes, and a tokenizer that reads as
llama2.c's."""

from llama2np.runtime.checkpoint import Config
from llama2np.tools.models.synthetic import SHAPES, synthetic_tokenizer_bytes

VOCAB = 32000


def test_shapes_are_llama2c_stories_models():
    """The bench's shapes: parameter counts as published (15M, 42M, 110M)."""
    def parameters(c: Config) -> int:
        layer = 2 * c.dim * c.dim + 2 * c.dim * c.kv_dim + 3 * c.dim * c.hidden_dim + 2 * c.dim
        return c.vocab_size * c.dim + c.n_layers * layer + c.dim

    counts = {name: parameters(config) / 1e6 for name, config in SHAPES.items()}
    assert round(counts["15M"]) == 15 and round(counts["42M"]) == 42
    assert round(counts["110M"]) == 110, counts


def test_synthetic_tokenizer_reads_as_llama2c_tokenizer(tmp_path):
    from llama2np.runtime.tokenizer import Tokenizer

    path = tmp_path / "tok.bin"
    path.write_bytes(synthetic_tokenizer_bytes(VOCAB))
    tokenizer = Tokenizer.load(path, VOCAB)
    tokens = tokenizer.encode("abc zz")
    assert tokens[0] == 1 and tokenizer.decode(tokens) == "abc zz"


