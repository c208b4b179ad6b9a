"""llama2np: llama2.c's Llama-2 inference in NumPy, token for token the same as run.c.

The runtime (this package, minus `tools` and `commands`) imports only the standard library and
NumPy, so the browser's Pyodide runs the very modules the command line runs.
"""

from llama2np.checkpoint import Checkpoint, Config, read_checkpoint
from llama2np.generate import Story
from llama2np.model import Transformer
from llama2np.tokenizer import Tokenizer

__all__ = ["Checkpoint", "Config", "Story", "Tokenizer", "Transformer", "load", "read_checkpoint"]
__version__ = "0.1.0"


def load(
    checkpoint: bytes | memoryview,
    tokenizer: bytes | memoryview,
    checkpoint_name: str = "checkpoint",
    tokenizer_name: str = "tokenizer",
) -> tuple[Transformer, Tokenizer]:
    """A ready model and its tokenizer from the two files' bytes; raises Llama2npError."""
    parsed = read_checkpoint(checkpoint, checkpoint_name)
    return Transformer(parsed), Tokenizer.from_bytes(tokenizer, parsed.config.vocab_size, tokenizer_name)
