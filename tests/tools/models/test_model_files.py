"""`generate` takes what llama2.c's sample.py takes: a train.py .pt and a SentencePiece .model,
and names any other format it is given."""

import pytest
from support import GOLDEN_T0, GOLDEN_T1, run_cli
from torch_files import train_pt


@pytest.fixture
def pt_file(tmp_path, checkpoint):
    path = tmp_path / "stories260K.pt"
    path.write_bytes(train_pt(checkpoint))
    return path


def test_a_pt_with_a_sentencepiece_model_writes_run_c_s_story(pt_file, model_dir, golden):
    greedy = run_cli("generate", pt_file, "-z", model_dir / "tok512.model", "-t", "0")
    assert greedy.returncode == 0, greedy.stderr
    assert greedy.stdout == golden(GOLDEN_T0) + "\n"
    sampled = run_cli("generate", pt_file, "-z", model_dir / "tok512.bin", "-t", "1.0", "-s", "133742")
    assert sampled.stdout == golden(GOLDEN_T1) + "\n"


def test_other_formats_are_named(tmp_path, model_dir):
    files = {
        "model.gguf": (b"GGUF\x03\x00\x00\x00" + bytes(64), "is a GGUF file"),
        "model.safetensors": ((20).to_bytes(8, "little") + b'{"a": 1}' + bytes(64), "is a safetensors file"),
        "tok512.bin": ((model_dir / "tok512.bin").read_bytes(), "is a tokenizer, not a checkpoint"),
        "tok512.model": ((model_dir / "tok512.model").read_bytes(), "is a tokenizer, not a checkpoint"),
    }
    for name, (data, words) in files.items():
        (tmp_path / name).write_bytes(data)
        result = run_cli("generate", tmp_path / name, "-z", model_dir / "tok512.bin")
        assert result.returncode == 1 and words in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr and "inconsistent header" not in result.stderr


def test_a_tokenizer_of_another_format_is_named(tmp_path, model_dir):
    gguf = tmp_path / "tok.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(64))
    for tokenizer, words in [(gguf, "is a GGUF file"), (model_dir / "stories260K.bin", "is a llama2.c checkpoint")]:
        result = run_cli("generate", model_dir / "stories260K.bin", "-z", tokenizer, "-n", "4")
        assert result.returncode == 1 and words in result.stderr, result.stderr
