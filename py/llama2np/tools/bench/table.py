"""The benchmark's Markdown table: every engine's figures beside the straightforward port's."""

from llama2np.benchmark import ENGINES

BASELINE = "straightforward port"


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
