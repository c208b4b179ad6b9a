"""Is this model sound? Every check `llama2np validate` and the site bundler run, as data.

One gate: what validation accepts, the runtime loads. A llama2.c checkpoint is read by the
runtime's own reader (which checks the header, the Q8_0 groups and the exact file size) and the
tokenizer by the very parser `generate` and the page use (`Tokenizer.load` reads the file and
hands its bytes to `Tokenizer.from_bytes`, which the page calls with the downloaded bytes, with
the model's vocabulary size), so the two can never disagree; validation only adds checks (NaN/Inf, all-zero
tensors). A train.py `.pt` is read by the restricted `.pt` reader and checked the same way, but
it is never accepted as it is: the runtime reads llama2.c files only, so the report says to
convert it with `llama2np export`.
"""

import dataclasses
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llama2np.runtime.checkpoint import (
    HEADER_BYTES,
    Checkpoint,
    StoredQ8_0,
    check_file_size,
    parameter_count,
    read_checkpoint,
    weight_shapes,
)
from llama2np.runtime.errors import CheckpointError, Llama2npError
from llama2np.runtime.files import read_file, read_start, require_regular_file
from llama2np.runtime.own_files import is_sentencepiece, looks_like_tokenizer
from llama2np.runtime.tokenizer import Tokenizer

FORMATS = {0: "llama2.c version 0 (legacy fp32)", 1: "llama2.c version 1 (fp32)",
           2: "llama2.c version 2 (Q8_0)"}
PYTORCH_FORMAT = "PyTorch checkpoint of llama2.c's train.py"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class TensorStats:
    name: str
    shape: tuple[int, ...]
    min: float
    max: float
    mean: float
    std: float
    nonfinite: int  # NaN and infinite entries


@dataclass
class Report:
    """What validation found; `ok` when `problems` is empty."""

    checkpoint: str
    file_bytes: int
    sha256: str = ""  # of the checkpoint file, for manifests and for matching a report to a file
    format: str = "unknown"
    config: dict | None = None
    parameters: int = 0
    shared_classifier: bool | None = None
    group_size: int | None = None
    tensors: list[TensorStats] = field(default_factory=list)
    tokenizer: str | None = None
    tokenizer_vocab_size: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["ok"] = self.ok
        for tensor in data["tensors"]:
            tensor["shape"] = list(tensor["shape"])
            for key in ("min", "max", "mean", "std"):  # JSON has no NaN
                tensor[key] = tensor[key] if math.isfinite(tensor[key]) else None
        return data


def validate_model(checkpoint: Path, tokenizer: Path | None = None) -> Report:
    """Run every check; problems are collected as sentences, never raised."""
    checkpoint = Path(checkpoint)
    report = Report(str(checkpoint), 0)
    try:
        check_before_reading(checkpoint)
        data = read_file(checkpoint, "checkpoint", CheckpointError)
        # Size and digest of the very bytes checked, not of whatever the name points to later.
        report.file_bytes, report.sha256 = len(data), hashlib.sha256(data).hexdigest()
        # Version 2's matrices stay quantised: their statistics are read a block at a time.
        parsed, report.format = parse_any(data, str(checkpoint), dequantize=False)
    except Llama2npError as error:
        report.problems.append(str(error))
        return report
    del data
    describe(parsed, report)
    check_tensors(parsed, report)
    if tokenizer is not None:
        check_tokenizer(Path(tokenizer), parsed.config.vocab_size, report)
    if report.format == PYTORCH_FORMAT:
        report.problems.append(
            f"{checkpoint} is a PyTorch checkpoint, which generate reads but the page cannot load; "
            f"convert it first with `llama2np export {checkpoint} model.bin` and use model.bin."
        )
    return report


def require_valid(checkpoint: Path, tokenizer: Path | None = None) -> Report:
    """The report of a model the runtime loads (what `build` bundles), or Llama2npError listing
    what is wrong; a .pt is refused with the `llama2np export` line that converts it."""
    report = validate_model(checkpoint, tokenizer)
    if not report.ok:
        raise Llama2npError(f"{checkpoint} is not a usable model: " + " ".join(report.problems))
    return report


def read_any(path: Path) -> tuple[Checkpoint, str]:
    """A checkpoint from a llama2.c .bin or a train.py .pt, with the format's name. A .bin's
    size is checked against its header before the rest is read."""
    check_before_reading(path)
    return parse_any(read_file(path, "checkpoint", CheckpointError), str(path))


def check_before_reading(path: Path) -> None:
    """Refuse, from a file's first bytes, what is not a checkpoint: another format (named as
    such, not misread as a llama2.c header), a tokenizer, or a llama2.c .bin whose size is not
    what its header says (a 4 GB file whose header describes 1 MB is never read whole)."""
    start = read_start(path, "checkpoint", max(HEADER_BYTES, 256), CheckpointError)
    if start[:4] == ZIP_MAGIC:
        return
    foreign = other_format(start)
    if foreign:
        raise CheckpointError(f"{path} is {foreign}; llama2np reads llama2.c checkpoints (.bin) "
                              "and llama2.c train.py checkpoints (.pt).")
    if looks_like_tokenizer(start, require_regular_file(path, "checkpoint", CheckpointError)) \
            or is_sentencepiece(start):
        raise CheckpointError(f"{path} is a tokenizer, not a checkpoint; give it with -z, and "
                              "the model's .bin or .pt first.")
    check_file_size(path, start)


# Other formats a model file may come in, by their first bytes: what to call them.
FOREIGN = [
    (b"GGUF", "a GGUF file (llama.cpp's format)"),
    (b"\x80\x02", "a bare pickle (torch.save's format before 1.6)"),
    (b"\x89HDF", "an HDF5 file"),
]


def other_format(start: bytes) -> str | None:
    for magic, what in FOREIGN:
        if start.startswith(magic):
            return what
    if start[8:10] == b'{"' and int.from_bytes(start[:8], "little") < 1 << 30:
        return "a safetensors file"
    return None


def parse_any(data: bytes, name: str, dequantize: bool = True) -> tuple[Checkpoint, str]:
    """The checkpoint in a file's bytes: a .pt through the restricted reader, anything else
    through the runtime's own `read_checkpoint` (see there for `dequantize`)."""
    if data[:4] == ZIP_MAGIC:  # torch.save's zip container
        from llama2np.tools.models.torch_checkpoint import checkpoint_from_pt

        return checkpoint_from_pt(data, name), PYTORCH_FORMAT
    parsed = read_checkpoint(data, name, dequantize)
    return parsed, FORMATS[parsed.version]


def describe(parsed: Checkpoint, report: Report) -> None:
    c = parsed.config
    report.config = {**dataclasses.asdict(c), "head_size": c.head_size}
    report.shared_classifier = parsed.shared_classifier
    report.group_size = parsed.group_size
    report.parameters = parameter_count(parsed)


def check_tensors(parsed: Checkpoint, report: Report) -> None:
    for name, shape in weight_shapes(parsed.config).items():
        if name == "wcls" and parsed.shared_classifier:
            continue
        tensor = getattr(parsed.weights, name)
        if tensor.shape != shape:
            report.problems.append(f"tensor {name} has shape {tensor.shape}, expected {shape}.")
            continue
        stats, nonzero = tensor_stats(name, tensor)
        report.tensors.append(stats)
        if stats.nonfinite:
            report.problems.append(f"tensor {name} holds {stats.nonfinite} NaN or infinite values.")
        elif not nonzero:
            report.problems.append(f"tensor {name} is all zeros, as if it was never trained.")


# Statistics go through a tensor this many values at a time, in float64: memory stays a few
# megabytes above the model's, whatever the largest tensor.
STATS_CHUNK = 1 << 20


def value_blocks(tensor: np.ndarray | StoredQ8_0) -> Iterator[np.ndarray]:
    """A tensor's values in float64 blocks of about STATS_CHUNK, dequantised if stored as Q8_0."""
    if isinstance(tensor, StoredQ8_0):
        yield from tensor.blocks(STATS_CHUNK)
        return
    flat = tensor.reshape(-1)
    for start in range(0, flat.size, STATS_CHUNK):
        yield flat[start : start + STATS_CHUNK].astype(np.float64)


def tensor_stats(name: str, tensor: np.ndarray | StoredQ8_0) -> tuple[TensorStats, bool]:
    """A tensor's min, max, mean and standard deviation over its finite values (merged chunk by
    chunk, as Chan et al. combine partial means and squared deviations), how many values are
    not finite, and whether any is not zero."""
    count, mean, squares, low, high, nonfinite, nonzero = 0, 0.0, 0.0, math.inf, -math.inf, 0, False
    for block in value_blocks(tensor):
        finite = np.isfinite(block)
        if not finite.all():
            nonfinite += int(block.size - finite.sum())
            block = block[finite]
        if not block.size:
            continue
        nonzero = nonzero or bool(block.any())
        low, high = min(low, float(block.min())), max(high, float(block.max()))
        block_mean = float(block.mean())
        block_squares = float(np.square(block - block_mean).sum())
        total = count + block.size
        delta = block_mean - mean
        mean += delta * block.size / total
        squares += block_squares + delta * delta * count * block.size / total
        count = total
    nan = float("nan")
    stats = TensorStats(name, tensor.shape, low if count else nan, high if count else nan,
                        mean if count else nan, math.sqrt(squares / count) if count else nan,
                        nonfinite)
    return stats, nonzero


def check_tokenizer(path: Path, vocab_size: int, report: Report) -> None:
    """The tokenizer read as `generate` reads it (and, past the file, as the page does), for
    this model."""
    report.tokenizer = str(path)
    try:
        report.tokenizer_vocab_size = Tokenizer.load(path, vocab_size).vocab_size
    except Llama2npError as error:
        report.problems.append(str(error))


def format_report(report: Report) -> str:
    read = report.sha256 != ""  # else the file was refused before it was read
    lines = [f"{report.checkpoint}: {report.format}, {report.file_bytes:,} bytes" if read
             else f"{report.checkpoint}: not read as a model"]
    if report.config:
        c = report.config
        lines.append(f"  dim {c['dim']}, hidden {c['hidden_dim']}, {c['n_layers']} layers, "
                     f"{c['n_heads']} heads ({c['n_kv_heads']} key/value), head size {c['head_size']}, "
                     f"vocabulary {c['vocab_size']}, context {c['seq_len']}")
        classifier = "shared with the embedding" if report.shared_classifier else "its own"
        lines.append(f"  {report.parameters:,} parameters; classifier {classifier}"
                     + (f"; Q8_0 groups of {report.group_size}" if report.group_size else ""))
    if report.tokenizer:
        lines.append(f"  tokenizer {report.tokenizer}: {report.tokenizer_vocab_size} tokens")
    if report.tensors:
        lines.append(f"  {'tensor':<16} {'shape':<16} {'min':>10} {'max':>10} {'mean':>10} {'std':>10}")
        for t in report.tensors:
            shape = "x".join(map(str, t.shape))
            lines.append(f"  {t.name:<16} {shape:<16} {t.min:>10.4g} {t.max:>10.4g} {t.mean:>10.4g} {t.std:>10.4g}")
    lines.append("OK" if report.ok else f"NOT USABLE: {len(report.problems)} problem(s)")
    return "\n".join(lines)
