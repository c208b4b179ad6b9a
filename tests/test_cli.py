"""The command line: run.c's flags and output, and one clear sentence for every bad input."""

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from support import GOLDEN_T0, run_cli, write_tokenizer


@pytest.fixture
def files(model_dir):
    return model_dir / "stories260K.bin", model_dir / "tok512.bin"


def generate(files, *flags):
    checkpoint, tok = files
    return run_cli("generate", checkpoint, "-z", tok, *flags)


def assert_clean_failure(result, status, *phrases):
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "no message on standard error"
    message = lines[-1]
    assert message.startswith("llama2np: "), message
    for phrase in phrases:
        assert phrase in message, message


def test_prompt_is_echoed_then_continued(files):
    result = generate(files, "-t", "0", "-i", "Once upon a time, a dog", "-n", "40")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Once upon a time, a dog")
    assert len(result.stdout) > len("Once upon a time, a dog") + 20


def test_the_tokenizer_defaults_to_tokenizer_bin_here_as_in_run_c(tmp_path, model_dir, golden):
    def generate_here(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "llama2np.cli", "generate",
                               str(model_dir / "stories260K.bin"), *flags], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    assert_clean_failure(generate_here("-t", "0"), 2, "no tokenizer.bin in this folder", "-z")
    (tmp_path / "tokenizer.bin").write_bytes((model_dir / "tok512.bin").read_bytes())
    result = generate_here("-t", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == golden(GOLDEN_T0) + "\n"


def test_byte_fallback_characters_come_out_whole(files, tokenizer):
    # The emoji has no piece of its own: it is four byte-fallback tokens, which run.c's
    # safe_printf would drop one by one; here they come out as the character they make.
    prompt = "Lily saw a 🐶 and said"
    assert sum(3 <= t < 259 for t in tokenizer.encode(prompt)) == len("🐶".encode())
    result = generate(files, "-t", "0", "-i", prompt, "-n", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(prompt)


def write_random_model(path, vocab_size: int, seq_len: int) -> None:
    """A legacy llama2.c checkpoint with random weights (dim 8, one layer, two heads): one whose
    greedy story, unlike stories260K's, runs to the end of its context."""
    dim, hidden, layers, heads = 8, 16, 1, 2
    floats = (vocab_size * dim + layers * (2 * dim + 4 * dim * dim + 3 * dim * hidden) + dim
              + seq_len * dim // heads)  # embedding, layers, final norm, run.c's unused RoPE
    weights = np.random.default_rng(7).normal(0, 0.5, floats).astype("<f4")
    path.write_bytes(struct.pack("<7i", dim, hidden, layers, heads, heads, vocab_size, seq_len)
                     + weights.tobytes())


def test_a_story_goes_on_after_a_token_that_starts_a_character(files):
    # Seed 12 at temperature 2 writes, at step 181, the first byte of a two-byte character: a
    # token that adds no text yet, which once ended the printed story there.
    result = generate(files, "-t", "2", "-p", "0", "-s", "12", "-n", "200")
    assert result.returncode == 0, result.stderr
    assert "(200 tokens" in result.stderr


def test_probs_prints_a_json_line_a_token_and_the_same_story(files):
    flags = ["-t", "0.8", "-p", "0.9", "-s", "7", "-i", "Tom saw a 🐸", "-n", "60"]
    plain, probs = generate(files, *flags), generate(files, *flags, "--probs")
    assert probs.returncode == 0, probs.stderr
    lines = [json.loads(line) for line in probs.stdout.splitlines()]
    assert "Tom saw a 🐸" + "".join(line["text"] for line in lines) + "\n" == plain.stdout
    assert all(0 < line["p"] <= 1 and len(line["top"]) == 5 for line in lines)
    assert f"({len(lines)} tokens" in probs.stderr


def test_steps_beyond_context_are_clamped(tmp_path):
    files = tmp_path / "random.bin", tmp_path / "tok.bin"
    write_random_model(files[0], vocab_size=40, seq_len=24)
    write_tokenizer(files[1], 40)
    whole, beyond, zero = (generate(files, "-t", "0", "-n", n) for n in ("24", "100000", "0"))
    assert whole.returncode == beyond.returncode == zero.returncode == 0, beyond.stderr
    # The story fills the whole context (one step less makes it shorter), and asking for more
    # steps, or for 0 (run.c's "the whole context"), writes exactly that story.
    assert len(generate(files, "-t", "0", "-n", "23").stdout) < len(whole.stdout)
    assert beyond.stdout == zero.stdout == whole.stdout
    assert "(24 tokens," in beyond.stderr  # each of the 24 positions writes one


def test_encode_prints_ids_bos_first(model_dir, tokenizer):
    result = run_cli("encode", "-z", model_dir / "tok512.bin", "Hello, world! 42")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(t) for t in tokenizer.encode("Hello, world! 42")]
    assert result.stdout.split()[0] == "1"


def test_missing_checkpoint(tmp_path, files):
    result = generate((tmp_path / "nope.bin", files[1]))
    assert_clean_failure(result, 1, "nope.bin", "does not exist")


def test_empty_checkpoint(tmp_path, files):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert_clean_failure(generate((empty, files[1])), 1, "empty.bin", "empty")


def test_truncated_checkpoint(tmp_path, files):
    cut = tmp_path / "cut.bin"
    cut.write_bytes(files[0].read_bytes()[:500_000])
    assert_clean_failure(generate((cut, files[1])), 1, "cut.bin", "truncated", "1,056,540")


def test_checkpoint_with_inconsistent_header(tmp_path, files):
    data = bytearray(files[0].read_bytes())
    struct.pack_into("<i", data, 12, 7)  # n_heads = 7 does not divide dim = 64
    bad = tmp_path / "heads.bin"
    bad.write_bytes(bytes(data))
    assert_clean_failure(generate((bad, files[1])), 1, "heads.bin", "n_heads (7) does not divide dim (64)")


def test_checkpoint_with_extra_bytes(tmp_path, files):
    longer = tmp_path / "long.bin"
    longer.write_bytes(files[0].read_bytes() + b"\0" * 12)
    assert_clean_failure(generate((longer, files[1])), 1, "long.bin", "12 bytes more")


def test_tokenizer_of_another_model(tmp_path, files):
    data = files[1].read_bytes()
    small = tmp_path / "tok100.bin"
    # keep the header and the first 100 entries: a valid tokenizer with too few tokens
    offset, count = 4, 0
    while count < 100:
        length = struct.unpack_from("<i", data, offset + 4)[0]
        offset += 8 + length
        count += 1
    small.write_bytes(data[:offset])
    assert_clean_failure(generate((files[0], small)), 1, "tok100.bin", "holds 100 tokens", "512")


def test_truncated_tokenizer(tmp_path, files):
    cut = tmp_path / "tokcut.bin"
    cut.write_bytes(files[1].read_bytes()[:3001])
    assert_clean_failure(generate((files[0], cut)), 1, "tokcut.bin", "truncated")


def test_prompt_longer_than_context(files):
    result = generate(files, "-i", "the dog ran. " * 400)
    assert_clean_failure(result, 1, "context is 512 tokens", "shorten the prompt")


def test_prompt_filling_all_steps(files):
    result = generate(files, "-i", "the dog ran and the cat sat", "-n", "3")
    assert_clean_failure(result, 1, "fills all 3 steps")


@pytest.mark.parametrize(("flags", "phrase"), [
    (["-t", "-0.5"], "temperature -0.5"),
    (["-t", "nan"], "temperature nan"),
    (["-p", "1.5"], "top-p 1.5"),
    (["-p", "-0.1"], "top-p -0.1"),
    (["-n", "-3"], "steps -3"),
    (["-s", "-1"], "seed -1"),
])
def test_flags_out_of_range(files, flags, phrase):
    assert_clean_failure(generate(files, *flags), 2, phrase)


@pytest.mark.parametrize("flags", [["--bogus"], ["-t", "warm"], ["-n", "ten"]])
def test_unknown_or_malformed_flags(files, flags):
    result = generate(files, *flags)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage:" in result.stderr
