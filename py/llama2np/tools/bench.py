"""`llama2np bench`: decode and prompt speed of the runtime beside the straightforward port.

Without --browser it measures on this CPython; with --browser it builds (or takes) the site and
measures the same functions inside Chromium's Pyodide (see `browser_bench.py`).
"""

import argparse
import platform
from pathlib import Path

from llama2np.benchmark import ENGINES, measure
from llama2np.checkpoint import load_checkpoint
from llama2np.tools.fetch import DEFAULT_MODEL_DIR, fetch

BASELINE = "straightforward port"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure tokens/second beside the straightforward port",
        description="Measure decode tokens/s (greedy), prompt tokens/s and time to first token "
        "of llama2np and of a straightforward per-head NumPy port, in one process.",
    )
    parser.add_argument("checkpoint", nargs="?", type=Path,
                        help="llama2.c model file (default: stories260K, fetched if needed)")
    parser.add_argument("-n", "--steps", type=int, default=256, help="decode positions (default 256)")
    parser.add_argument("--prompt-tokens", type=int, default=100,
                        help="prompt length for prompt speed and time to first token (default 100)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best counts")
    parser.add_argument("--browser", action="store_true",
                        help="measure inside Chromium's Pyodide instead of this CPython")
    parser.add_argument("--site", type=Path, default=None,
                        help="with --browser: a site built by `llama2np build` (default: build one)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.browser:
        from llama2np.tools.browser_bench import run_browser_bench

        return run_browser_bench(args)
    if args.checkpoint is None:
        args.checkpoint = fetch(DEFAULT_MODEL_DIR, quiet=True) / "stories260K.bin"
    checkpoint = load_checkpoint(args.checkpoint)
    results = measure(checkpoint, args.steps, args.prompt_tokens, args.repeat)
    where = f"CPython {platform.python_version()} on {platform.machine()}, {platform.node() or 'this machine'}"
    print(format_table(results, f"{args.checkpoint.name}, {where}"))
    return 0


def format_table(results: dict, title: str, extra: dict | None = None) -> str:
    """A Markdown table of every engine's figures with its speed-up over the baseline."""
    base = results.get(BASELINE)
    lines = [f"{title}", "",
             "| engine | decode tok/s | x port | prompt tok/s | x port | first token ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in ENGINES:
        if name not in results:
            continue
        r = results[name]
        decode_ratio = r["decode_tokens_per_second"] / base["decode_tokens_per_second"] if base else 0
        prompt_ratio = r["prompt_tokens_per_second"] / base["prompt_tokens_per_second"] if base else 0
        lines.append(
            f"| {name} | {r['decode_tokens_per_second']:,.0f} | {decode_ratio:.2f} | "
            f"{r['prompt_tokens_per_second']:,.0f} | {prompt_ratio:.2f} | {r['first_token_ms']:.1f} |"
        )
    if extra:
        lines.append("")
        lines += [f"- {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines)


