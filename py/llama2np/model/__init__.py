"""The Llama-2 forward pass: `Transformer(checkpoint)` makes the engine that suits the model.

- transformer.py: what every engine shares (the choice, the context's bounds, the growing cache)
- fused.py: float64 with fused weights, for small models such as stories260K, where NumPy's
  calls cost more than the arithmetic
- float32.py: run.c's float32 on the checkpoint's own arrays, from stories15M's size up, where
  the weights set the pace
- rope.py: RoPE's rotations as complex numbers
"""

from llama2np.model.float32 import Float32Transformer
from llama2np.model.fused import FusedTransformer
from llama2np.model.transformer import Transformer, memory_needed

__all__ = ["Float32Transformer", "FusedTransformer", "Transformer", "memory_needed"]
