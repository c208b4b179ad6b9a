"""llama2.c checkpoints: the legacy format (version 0) and export.py's versions 1 (fp32) and 2 (Q8_0).

Everything is read from bytes, so the browser can hand over a downloaded buffer and no file system
is needed. Weights keep llama2.c's (out, in) row-major layout, stacked over layers, as float32.
The float32 tensors of versions 0 and 1 are views of those bytes, not copies: a 418 MiB model
then takes 418 MiB, and the bytes must not change while the checkpoint is in use (they are
read-only when given as `bytes`).
"""

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llama2np.runtime.errors import CheckpointError
from llama2np.runtime.files import read_file, read_start, require_regular_file

MAGIC = 0x616B3432  # "ak42" as a little-endian uint32: llama2.c export.py's version 1 and 2 files
LEGACY_HEADER = struct.Struct("<7i")
EXPORT_HEADER_SIZE = 256
EXPORT_PREFIX = struct.Struct("<Ii7iB")  # magic, version, the 7 config ints, shared classifier flag
GROUP_SIZE = struct.Struct("<i")  # version 2 only, right after the prefix
# Sizes far above any released Llama (405B: dim 16,384, hidden 53,248, 126 layers, vocabulary
# 128,256), so only a header of garbage exceeds them. They bound what a small file can ask for
# beyond its weights: the per-layer objects and NumPy calls, and a tokenizer's entries.
MAX_SIZES = {"dim": 1 << 16, "hidden_dim": 1 << 18, "n_layers": 1 << 10, "vocab_size": 1 << 20}


@dataclass(frozen=True)
class Config:
    dim: int  # transformer width
    hidden_dim: int  # width of the feed-forward layer
    n_layers: int
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads; fewer than n_heads means grouped-query attention
    vocab_size: int
    seq_len: int  # the context: positions the model was trained for

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_size

    def problems(self) -> list[str]:
        """What makes this configuration unusable, as phrases; empty when it is sound."""
        found = [
            f"{name} is {value}, not a positive number"
            for name, value in vars(self).items()
            if value <= 0
        ]
        found += [
            f"{name} is {getattr(self, name):,}, more than the {limit:,} llama2np runs"
            for name, limit in MAX_SIZES.items()
            if getattr(self, name) > limit
        ]
        if found:
            return found
        if self.vocab_size < 3:  # a story starts with BOS (1); 0 and 2 are unknown and EOS
            found.append(f"vocab_size is {self.vocab_size}, fewer than the 3 tokens llama2.c "
                         "reserves (unknown, BOS, EOS)")
        if self.dim % self.n_heads:
            found.append(f"n_heads ({self.n_heads}) does not divide dim ({self.dim})")
        if self.n_heads % self.n_kv_heads:
            found.append(f"n_kv_heads ({self.n_kv_heads}) does not divide n_heads ({self.n_heads})")
        if self.head_size % 2:
            found.append(f"the head size ({self.head_size}) is odd, which RoPE cannot rotate")
        return found


@dataclass
class Weights:
    """All parameters; L is n_layers, shapes are (out, in) as in run.c and PyTorch."""

    token_embedding: np.ndarray  # (vocab_size, dim)
    rms_att: np.ndarray  # (L, dim)
    wq: np.ndarray  # (L, n_heads * head_size, dim)
    wk: np.ndarray  # (L, kv_dim, dim)
    wv: np.ndarray  # (L, kv_dim, dim)
    wo: np.ndarray  # (L, dim, n_heads * head_size)
    rms_ffn: np.ndarray  # (L, dim)
    w1: np.ndarray  # (L, hidden_dim, dim)
    w2: np.ndarray  # (L, dim, hidden_dim)
    w3: np.ndarray  # (L, hidden_dim, dim)
    rms_final: np.ndarray  # (dim,)
    wcls: np.ndarray  # (vocab_size, dim); the embedding itself when the classifier is shared


def weight_shapes(c: Config) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in `Weights`, in the field order above."""
    L = c.n_layers
    return {
        "token_embedding": (c.vocab_size, c.dim),
        "rms_att": (L, c.dim),
        "wq": (L, c.n_heads * c.head_size, c.dim),
        "wk": (L, c.kv_dim, c.dim),
        "wv": (L, c.kv_dim, c.dim),
        "wo": (L, c.dim, c.n_heads * c.head_size),
        "rms_ffn": (L, c.dim),
        "w1": (L, c.hidden_dim, c.dim),
        "w2": (L, c.dim, c.hidden_dim),
        "w3": (L, c.hidden_dim, c.dim),
        "rms_final": (c.dim,),
        "wcls": (c.vocab_size, c.dim),
    }


def parameter_count(checkpoint: "Checkpoint") -> int:
    """The model's parameters: a shared classifier is the embedding matrix, not parameters of
    its own."""
    shapes = weight_shapes(checkpoint.config)
    if checkpoint.shared_classifier:
        shapes.pop("wcls")
    return sum(_count(shape) for shape in shapes.values())


@dataclass
class Checkpoint:
    config: Config
    weights: Weights
    version: int  # 0 (legacy), 1 (fp32) or 2 (Q8_0)
    shared_classifier: bool
    group_size: int | None = None  # Q8_0 group size, version 2 only
    # Version 0's RoPE tables as the file stores them, cos and sin (seq_len, head_size / 2);
    # run.c skips them, and an export to version 0 copies them rather than compute its own.
    rope_tables: tuple[np.ndarray, np.ndarray] | None = None


# The order in which each format stores its tensors. Norms are fp32 in every format.
LEGACY_ORDER = ("token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3",
                "rms_final")
NORMS = ("rms_att", "rms_ffn", "rms_final")
EXPORT_MATRICES = ("token_embedding", "wq", "wk", "wv", "wo", "w1", "w2", "w3")


@dataclass(frozen=True)
class Header:
    """What a checkpoint's first bytes say: its format, its shapes and the bytes they need."""

    version: int  # 0 (legacy), 1 (fp32) or 2 (Q8_0)
    config: Config
    shared_classifier: bool
    group_size: int | None  # Q8_0 group size, version 2 only
    offset: int  # where the weights begin
    size: int  # the file's size that the header implies

    @property
    def kind(self) -> str:
        return {0: "version 0 (legacy)", 1: "version 1 (fp32)", 2: "version 2 (Q8_0)"}[self.version]


# Enough of a file's start for `read_header`, whatever its version.
HEADER_BYTES = EXPORT_HEADER_SIZE


@dataclass(frozen=True)
class StoredQ8_0:
    """A Q8_0 matrix as the file stores it, not dequantised: per layer, its int8 values and one
    float32 scale per group. Validation reads a large model's statistics from it a block at a
    time, instead of holding four bytes per weight."""

    shape: tuple[int, ...]
    layers: list[tuple[np.ndarray, np.ndarray]]  # (int8 values, <f4 scales), in file order
    group_size: int

    def blocks(self, values: int) -> Iterator[np.ndarray]:
        """The dequantised weights in file order, `values` at a time (a block may end inside a
        group, however large a file's groups): the float32 values the runtime computes, as
        float64."""
        for quantized, scales in self.layers:
            for start in range(0, quantized.size, values):
                block = quantized[start : start + values].astype(np.float32)
                groups = np.arange(start, start + block.size) // self.group_size
                with np.errstate(over="ignore", invalid="ignore"):  # validate names such weights
                    block *= scales[groups]
                yield block.astype(np.float64)


def read_checkpoint(data: bytes | bytearray | memoryview, name: str = "checkpoint",
                    dequantize: bool = True) -> Checkpoint:
    """Parse a llama2.c checkpoint of any version; `name` appears in error messages. With
    `dequantize=False`, version 2's matrices stay as stored (`StoredQ8_0`, views of `data`)."""
    data = memoryview(data).cast("B")
    header = read_header(data, name)
    check_size(header, len(data), name)
    reader = _Reader(data, header.offset)
    shapes = weight_shapes(header.config)
    rope_tables = None
    if header.version == 0:
        arrays = {key: reader.fp32(shapes[key]) for key in LEGACY_ORDER}
        half = (header.config.seq_len, header.config.head_size // 2)
        rope_tables = (reader.fp32(half), reader.fp32(half))
        matrices = [] if header.shared_classifier else ["wcls"]
    else:
        arrays = {key: reader.fp32(shapes[key]) for key in NORMS}
        matrices = [*EXPORT_MATRICES, *([] if header.shared_classifier else ["wcls"])]
    for key in matrices:
        if header.version != 2:
            arrays[key] = reader.fp32(shapes[key])
        elif dequantize:
            arrays[key] = reader.q8_0(shapes[key], header.group_size)
        else:
            arrays[key] = reader.stored_q8_0(shapes[key], header.group_size)
    if header.shared_classifier:
        arrays["wcls"] = arrays["token_embedding"]
    return Checkpoint(header.config, Weights(**arrays), header.version, header.shared_classifier,
                      header.group_size, rope_tables)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file, turning file-system failures into one-sentence errors."""
    check_file_size(path)
    return read_checkpoint(read_file(path, "checkpoint", CheckpointError), str(path))


def check_file_size(path: str | Path, start: bytes | None = None) -> None:
    """Check a checkpoint file's size against what its header (`start`, its first bytes, read
    here if not given) says, before the rest is read: a 4 GB file whose header describes 1 MB
    costs 256 bytes of reading, not 4 GB."""
    if start is None:
        start = read_start(path, "checkpoint", HEADER_BYTES, CheckpointError)
    check_size(read_header(start, str(path)), require_regular_file(path, "checkpoint",
                                                                   CheckpointError), str(path))


def read_header(start: bytes | bytearray | memoryview, name: str = "checkpoint") -> Header:
    """The header of a checkpoint of any version from the file's first bytes (HEADER_BYTES
    suffice), checked for consistency; raises CheckpointError with a sentence naming `name`."""
    start = memoryview(start).cast("B")
    if len(start) == 0:
        raise CheckpointError(f"{name} is empty; it is not a llama2.c checkpoint.")
    if len(start) < LEGACY_HEADER.size:
        raise CheckpointError(
            f"{name} is only {len(start)} bytes, too short for a llama2.c checkpoint header."
        )
    if struct.unpack_from("<I", start)[0] == MAGIC:
        return _export_header(start, name)
    return _legacy_header(start, name)


def check_size(header: Header, size: int, name: str) -> None:
    """The file's size is what its header implies, or a sentence says how it differs."""
    if size < header.size:
        raise CheckpointError(
            f"{name} is truncated: a llama2.c {header.kind} checkpoint with this header needs "
            f"{header.size:,} bytes but the file has {size:,}."
        )
    if size > header.size:
        raise CheckpointError(
            f"{name} has {size - header.size:,} bytes more than a llama2.c {header.kind} "
            f"checkpoint with this header ({header.size:,}); the header does not match the weights."
        )


def float32_bytes(header: Header) -> int:
    """What the weights take once read: a view of the file for versions 0 and 1, float32 copies
    of the Q8_0 matrices for version 2 (the file itself is then no longer needed)."""
    if header.version != 2:
        return 0
    shapes = weight_shapes(header.config)
    matrices = [*EXPORT_MATRICES, *([] if header.shared_classifier else ["wcls"])]
    return 4 * sum(_count(shapes[k]) for k in matrices)


def _check_config(config: Config, name: str) -> None:
    problems = config.problems()
    if problems:
        raise CheckpointError(
            f"{name} has an inconsistent header ({'; '.join(problems)}); "
            "it is not a valid llama2.c checkpoint."
        )


def _rope_floats(config: Config) -> int:
    """The legacy format's two RoPE tables of seq_len * head_size / 2, which run.c skips."""
    return config.seq_len * config.head_size


def _legacy_header(start: memoryview, name: str) -> Header:
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = LEGACY_HEADER.unpack_from(start)
    # run.c's convention: a negative vocabulary size means the classifier is stored separately.
    shared = vocab > 0
    config = Config(dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len)
    _check_config(config, name)
    shapes = weight_shapes(config)
    floats = sum(_count(shapes[k]) for k in LEGACY_ORDER) + _rope_floats(config)
    if not shared:
        floats += _count(shapes["wcls"])
    return Header(0, config, shared, None, LEGACY_HEADER.size, LEGACY_HEADER.size + 4 * floats)


def _export_header(start: memoryview, name: str) -> Header:
    if len(start) < EXPORT_PREFIX.size + GROUP_SIZE.size:
        raise CheckpointError(
            f"{name} is only {len(start)} bytes, shorter than the 256-byte header of its format."
        )
    _, version, *sizes, shared_flag = EXPORT_PREFIX.unpack_from(start)
    if version not in (1, 2):
        raise CheckpointError(
            f"{name} is llama2.c export version {version}; only versions 0, 1 and 2 are known."
        )
    config = Config(*sizes)
    _check_config(config, name)
    shared = bool(shared_flag)
    shapes = weight_shapes(config)
    matrices = list(EXPORT_MATRICES) + ([] if shared else ["wcls"])
    norms = sum(_count(shapes[k]) for k in NORMS)
    if version == 1:
        floats = norms + sum(_count(shapes[k]) for k in matrices)
        return Header(1, config, shared, None, EXPORT_HEADER_SIZE, EXPORT_HEADER_SIZE + 4 * floats)
    (group_size,) = GROUP_SIZE.unpack_from(start, EXPORT_PREFIX.size)
    _check_groups(config, shapes, matrices, group_size, name)
    quantized = sum(_count(shapes[k]) for k in matrices)
    size = EXPORT_HEADER_SIZE + 4 * norms + quantized + 4 * (quantized // group_size)
    return Header(2, config, shared, group_size, EXPORT_HEADER_SIZE, size)


def _check_groups(
    config: Config, shapes: dict, matrices: list[str], group_size: int, name: str
) -> None:
    if group_size <= 0:
        raise CheckpointError(f"{name} has a Q8_0 group size of {group_size}; it must be positive.")
    for key in matrices:
        per_layer = _count(shapes[key][1:]) if key not in ("token_embedding", "wcls") else None
        count = per_layer or _count(shapes[key])
        if count % group_size:
            raise CheckpointError(
                f"{name} has Q8_0 groups of {group_size}, which do not divide {key}'s "
                f"{count} values; the file is inconsistent."
            )


def _count(shape: tuple[int, ...]) -> int:
    return math.prod(shape)  # Python ints: a garbage header must not overflow


class _Reader:
    """Walks through the weight section, handing out arrays in file order."""

    def __init__(self, data: memoryview, offset: int) -> None:
        self.data = data
        self.offset = offset

    def take(self, dtype: type, count: int) -> np.ndarray:
        array = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset)
        self.offset += array.nbytes
        return array

    def fp32(self, shape: tuple[int, ...]) -> np.ndarray:
        # A view on little-endian machines (every one Pyodide and llama2.c run on); a copy only
        # where the byte order differs.
        return self.take(np.dtype("<f4"), _count(shape)).reshape(shape).astype(np.float32, copy=False)

    def q8_0(self, shape: tuple[int, ...], group_size: int) -> np.ndarray:
        """Dequantise: each layer's tensor is its int8 values, then one fp32 scale per group.
        Written layer by layer into one float32 array, so the only memory beyond the result is
        one layer's int8-to-float32 conversion."""
        per_tensor = shape[1:] if len(shape) == 3 else shape
        out = np.empty((shape[0] if len(shape) == 3 else 1, *per_tensor), np.float32)
        for tensor in out:
            count = _count(per_tensor)
            groups = tensor.reshape(-1, group_size)
            np.copyto(groups, self.take(np.int8, count).reshape(-1, group_size))
            with np.errstate(over="ignore", invalid="ignore"):  # validate names such weights
                groups *= self.take(np.dtype("<f4"), count // group_size)[:, None]
        return out if len(shape) == 3 else out[0]

    def stored_q8_0(self, shape: tuple[int, ...], group_size: int) -> StoredQ8_0:
        count = _count(shape[1:] if len(shape) == 3 else shape)
        layers = [(self.take(np.int8, count), self.take(np.dtype("<f4"), count // group_size))
                  for _ in range(shape[0] if len(shape) == 3 else 1)]
        return StoredQ8_0(shape, layers, group_size)
