"""Is this model sound? Every check `llama2np validate` and the site bundler run, as data.

A checkpoint is read by the runtime's own reader (which already checks the header and the exact
file size), or by the restricted `.pt` reader; then every tensor is checked for its shape,
NaN/Inf and all zeros, and the tokenizer for fitting the model's vocabulary.
"""

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llama2np.checkpoint import Checkpoint, read_checkpoint, weight_shapes
from llama2np.errors import CheckpointError, Llama2npError
from llama2np.files import read_file
from llama2np.tokenizer import Tokenizer

FORMATS = {0: "llama2.c version 0 (legacy fp32)", 1: "llama2.c version 1 (fp32)",
           2: "llama2.c version 2 (Q8_0)"}
PYTORCH_FORMAT = "PyTorch checkpoint of llama2.c's train.py"


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
    report = Report(str(checkpoint), checkpoint.stat().st_size if checkpoint.is_file() else 0)
    try:
        parsed, report.format = read_any(checkpoint)
        report.sha256 = file_sha256(checkpoint)
    except Llama2npError as error:
        report.problems.append(str(error))
        return report
    describe(parsed, report)
    check_tensors(parsed, report)
    if tokenizer is not None:
        check_tokenizer(Path(tokenizer), parsed.config.vocab_size, report)
    return report


def require_valid(checkpoint: Path, tokenizer: Path | None = None) -> Report:
    """The report of a sound model, or Llama2npError listing what is wrong."""
    report = validate_model(checkpoint, tokenizer)
    if not report.ok:
        raise Llama2npError(f"{checkpoint} is not a usable model: " + " ".join(report.problems))
    return report


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def read_any(path: Path) -> tuple[Checkpoint, str]:
    """A checkpoint from a llama2.c .bin or a train.py .pt, with the format's name."""
    data = read_file(path, "checkpoint", CheckpointError)
    if data[:4] == b"PK\x03\x04":  # torch.save's zip container
        from llama2np.tools.models.torch_checkpoint import checkpoint_from_pt

        return checkpoint_from_pt(data, str(path)), PYTORCH_FORMAT
    parsed = read_checkpoint(data, str(path))
    return parsed, FORMATS[parsed.version]


def describe(parsed: Checkpoint, report: Report) -> None:
    c = parsed.config
    report.config = {**dataclasses.asdict(c), "head_size": c.head_size}
    report.shared_classifier = parsed.shared_classifier
    report.group_size = parsed.group_size
    shapes = weight_shapes(c)
    if parsed.shared_classifier:
        shapes.pop("wcls")  # the embedding matrix, not a parameter of its own
    report.parameters = sum(int(np.prod(shape)) for shape in shapes.values())


def check_tensors(parsed: Checkpoint, report: Report) -> None:
    for name, shape in weight_shapes(parsed.config).items():
        if name == "wcls" and parsed.shared_classifier:
            continue
        tensor = getattr(parsed.weights, name)
        if tensor.shape != shape:
            report.problems.append(f"tensor {name} has shape {tensor.shape}, expected {shape}.")
            continue
        values = tensor.astype(np.float64)
        finite = np.isfinite(values)
        nonfinite = int(values.size - finite.sum())
        shown = values[finite] if nonfinite else values
        stats = TensorStats(
            name, shape,
            float(shown.min()) if shown.size else float("nan"),
            float(shown.max()) if shown.size else float("nan"),
            float(shown.mean()) if shown.size else float("nan"),
            float(shown.std()) if shown.size else float("nan"),
            nonfinite,
        )
        report.tensors.append(stats)
        if nonfinite:
            report.problems.append(f"tensor {name} holds {nonfinite} NaN or infinite values.")
        elif not values.any():
            report.problems.append(f"tensor {name} is all zeros, as if it was never trained.")


def check_tokenizer(path: Path, vocab_size: int, report: Report) -> None:
    report.tokenizer = str(path)
    try:
        tokenizer = Tokenizer.load(path, None)
    except Llama2npError as error:
        report.problems.append(str(error))
        return
    report.tokenizer_vocab_size = tokenizer.vocab_size
    if tokenizer.vocab_size != vocab_size:
        report.problems.append(
            f"tokenizer {path} has {tokenizer.vocab_size} tokens but the model's vocabulary has "
            f"{vocab_size}; use the tokenizer the model was trained with."
        )


def format_report(report: Report) -> str:
    lines = [f"{report.checkpoint}: {report.format}, {report.file_bytes:,} bytes"]
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
