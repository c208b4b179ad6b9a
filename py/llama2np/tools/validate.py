"""`llama2np validate`: a model's report (format, config, sizes, per-tensor statistics), and a
non-zero exit with the reasons when anything is wrong. The checks live in `validation.py`."""

import argparse
import json
import sys
from pathlib import Path

from llama2np.tools.validation import Report, validate_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a checkpoint (and its tokenizer) before publishing it",
        description="Check a llama2.c checkpoint (.bin, versions 0-2) or a train.py .pt: header, "
        "exact size, tensor shapes, NaN/Inf, all-zero tensors, and that the tokenizer fits.",
    )
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("-z", "--tokenizer", type=Path, help="llama2.c tokenizer .bin to check against it")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = validate_model(args.checkpoint, args.tokenizer)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(format_report(report))
    if not report.ok:
        for problem in report.problems:
            print(f"llama2np: {problem}", file=sys.stderr)
        return 1
    return 0


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
