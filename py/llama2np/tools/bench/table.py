"""The benchmark's Markdown tables: each engine beside the straightforward port, and the sweep of sizes."""

from llama2np.runtime.benchmark import ENGINES, PLAIN, PORT


def format_table(results: dict, title: str, extra: dict | None = None) -> str:
    """A Markdown table of every engine's figures with its speed-up over the baseline."""
    base = results.get(PORT)
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


def format_sweep(rows: list[dict], title: str) -> str:
    lines = [title, "",
             "| shape | params | file MB | engine | load s | peak MB | goal MB | decode tok/s "
             "| port | x port | prompt tok/s | port | x port | first token ms |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: | ---: |"]
    for row in rows:
        ours, port = row["results"][PLAIN], row["results"][PORT]
        decode, port_decode = ours["decode_tokens_per_second"], port["decode_tokens_per_second"]
        prompt, port_prompt = ours["prompt_tokens_per_second"], port["prompt_tokens_per_second"]
        lines.append(
            f"| {row['shape']} | {row['parameters'] / 1e6:,.1f}M | {row['bytes'] / 2**20:,.1f} | "
            f"{row['engine']} | {row['load_seconds']:.2f} | {row['peak_mb']:,.0f} | "
            f"{row['bound_mb']:,.0f} | {decode:,.0f} | {port_decode:,.0f} | "
            f"{decode / port_decode:.2f} | {prompt:,.0f} | {port_prompt:,.0f} | "
            f"{prompt / port_prompt:.2f} | {ours['first_token_ms']:.1f} |")
    return "\n".join(lines)
