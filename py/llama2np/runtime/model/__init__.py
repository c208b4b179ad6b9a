"""The Llama-2 forward pass: `make_model(checkpoint)` makes the engine that suits the model.

- transformer.py: what every engine shares (the context's bounds, the growing cache)
- fused.py: float64 with fused weights, for small models such as stories260K, where NumPy's
  calls cost more than the arithmetic
- float32.py: run.c's float32 on the checkpoint's own arrays, from stories15M's size up, where
  the weights set the pace
- rope.py: RoPE's rotations as complex numbers
"""

from llama2np.runtime.checkpoint import Checkpoint, Config
from llama2np.runtime.model.float32 import Float32Transformer
from llama2np.runtime.model.fused import FusedTransformer
from llama2np.runtime.model.transformer import Transformer

__all__ = ["Float32Transformer", "FusedTransformer", "Transformer", "engine_for", "make_model",
           "memory_needed"]

ENGINES = {64: FusedTransformer, 32: Float32Transformer}  # by the precision they compute in


def engine_for(config: Config, precision: int | None = None) -> type[Transformer]:
    """The engine for a model: float64 while its copies fit the budget, else run.c's float32;
    `precision` (64 or 32) chooses by hand."""
    if precision is None:
        precision = 64 if FusedTransformer.fits(config) else 32
    if precision not in ENGINES:
        raise ValueError(f"precision {precision} is neither 32 nor 64")
    return ENGINES[precision]


def make_model(checkpoint: Checkpoint, precision: int | None = None) -> Transformer:
    """The model of a checkpoint, in the engine that suits it (see `engine_for`)."""
    return engine_for(checkpoint.config, precision)(checkpoint)


def memory_needed(config: Config) -> int:
    """What the engine for a model allocates beyond its checkpoint once a story fills the context."""
    return engine_for(config).memory_bytes(config, config.seq_len)
