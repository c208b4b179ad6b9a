"""`llama2np validate`: the report of a sound model, and a sentence for every kind of damage."""

import hashlib
import json
import math
import struct

import numpy as np
import pytest
from support import run_cli


def test_json_report_of_the_real_model(model_dir):
    path = model_dir / "stories260K.bin"
    result = run_cli("validate", path, "-z", model_dir / "tok512.bin", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    data = path.read_bytes()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("<7i", data[:28])
    assert report["ok"] is True and report["problems"] == []
    assert report["format"] == "llama2.c version 0 (legacy fp32)"
    assert report["file_bytes"] == path.stat().st_size == len(data)
    assert report["config"] == dict(dim=dim, hidden_dim=hidden, n_layers=layers, n_heads=heads,
                                    n_kv_heads=kv_heads, vocab_size=abs(vocab), seq_len=seq_len,
                                    head_size=dim // heads)
    assert report["shared_classifier"] is (vocab > 0)
    kv_dim = dim // heads * kv_heads
    per_layer = 2 * dim + dim * dim * 2 + 2 * dim * kv_dim + 3 * dim * hidden
    assert report["parameters"] == abs(vocab) * dim + layers * per_layer + dim
    assert report["tokenizer_vocab_size"] == 512
    names = [t["name"] for t in report["tensors"]]
    assert names == ["token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2",
                     "w3", "rms_final"]
    embedding = np.frombuffer(data, "<f4", count=abs(vocab) * dim, offset=28)
    first = report["tensors"][0]
    assert first["shape"] == [abs(vocab), dim]
    assert math.isclose(first["mean"], float(embedding.astype(np.float64).mean()), rel_tol=1e-9)
    assert math.isclose(first["max"], float(embedding.max()), rel_tol=1e-7)
    assert report["sha256"] == hashlib.sha256(data).hexdigest()


def test_readable_report(model_dir):
    result = run_cli("validate", model_dir / "stories260K.bin")
    assert result.returncode == 0
    assert "260,032 parameters" in result.stdout and result.stdout.rstrip().endswith("OK")


def damaged(model_dir, tmp_path, change) -> str:
    data = bytearray((model_dir / "stories260K.bin").read_bytes())
    data = change(data)
    path = tmp_path / "damaged.bin"
    path.write_bytes(bytes(data))
    return path


def set_floats(offset_floats: int, values: list[float]):
    def change(data: bytearray) -> bytearray:
        start = 28 + 4 * offset_floats
        data[start: start + 4 * len(values)] = struct.pack(f"<{len(values)}f", *values)
        return data
    return change


def zero_wq(data: bytearray) -> bytearray:
    start = 28 + 4 * (512 * 64 + 5 * 64)
    data[start: start + 4 * 5 * 64 * 64] = bytes(4 * 5 * 64 * 64)
    return data


CASES = {
    "truncated": (lambda d: d[:-1000], "is truncated"),
    "empty": (lambda d: bytearray(), "is empty"),
    "garbage header": (lambda d: bytearray(b"\xff" * 28) + d[28:], "not a positive number"),
    "heads not dividing": (lambda d: d[:12] + struct.pack("<i", 7) + d[16:], "does not divide dim"),
    "nan weights": (set_floats(100, [float("nan"), float("inf")]), "tensor token_embedding holds 2 NaN or infinite values"),
    "all-zero tensor": (zero_wq, "tensor wq is all zeros"),
}


@pytest.mark.parametrize("case", CASES)
def test_damaged_checkpoints_are_refused_with_a_sentence(model_dir, tmp_path, case):
    change, message = CASES[case]
    path = damaged(model_dir, tmp_path, change)
    result = run_cli("validate", path)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.startswith("llama2np: ") and "Traceback" not in result.stderr
    as_json = json.loads(run_cli("validate", path, "--json").stdout)
    assert as_json["ok"] is False and any(message in p for p in as_json["problems"])


def test_tokenizer_of_another_model_is_refused(model_dir, tmp_path):
    data = (model_dir / "tok512.bin").read_bytes()
    # The first 300 tokens of the file: a sound tokenizer, but for a 300-token vocabulary.
    offset, pieces = 4, 0
    while pieces < 300:
        length = struct.unpack_from("<i", data, offset + 4)[0]
        offset += 8 + length
        pieces += 1
    other = tmp_path / "tok300.bin"
    other.write_bytes(data[:offset])
    result = run_cli("validate", model_dir / "stories260K.bin", "-z", other)
    assert result.returncode == 1
    assert "has 300 tokens but the model's vocabulary has 512" in result.stderr


def test_truncated_tokenizer_is_refused(model_dir, tmp_path):
    cut = tmp_path / "cut.bin"
    cut.write_bytes((model_dir / "tok512.bin").read_bytes()[:1001])
    result = run_cli("validate", model_dir / "stories260K.bin", "-z", cut)
    assert result.returncode == 1 and "cut.bin" in result.stderr and "Traceback" not in result.stderr


def test_missing_checkpoint_is_a_sentence(tmp_path):
    result = run_cli("validate", tmp_path / "none.bin")
    assert result.returncode == 1 and "does not exist" in result.stderr
