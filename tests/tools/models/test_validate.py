"""`llama2np validate`: the report of a sound model, and a sentence for every kind of damage."""

import hashlib
import json
import math
import struct

import numpy as np
import pytest
from llama2np.runtime.errors import Llama2npError
from llama2np.runtime.session import Session
from llama2np.tools.models.checkpoint_writer import write_checkpoint
from llama2np.tools.models.validation import PYTORCH_FORMAT, validate_model
from support import FIXTURES, run_cli, write_tokenizer


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
    assert "holds 300 tokens but the model's vocabulary has 512" in result.stderr


def test_truncated_tokenizer_is_refused(model_dir, tmp_path):
    cut = tmp_path / "cut.bin"
    cut.write_bytes((model_dir / "tok512.bin").read_bytes()[:1001])
    result = run_cli("validate", model_dir / "stories260K.bin", "-z", cut)
    assert result.returncode == 1 and "cut.bin" in result.stderr and "Traceback" not in result.stderr


def test_missing_checkpoint_is_a_sentence(tmp_path):
    result = run_cli("validate", tmp_path / "none.bin")
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert "0 bytes" not in result.stdout and "not read as a model" in result.stdout


@pytest.mark.parametrize("name", ["tok512.bin", "tok512.model"])
def test_a_tokenizer_given_as_the_checkpoint_is_named(model_dir, name):
    result = run_cli("validate", model_dir / name)
    assert result.returncode == 1
    assert f"{name} is a tokenizer, not a checkpoint; give it with -z" in result.stderr
    assert "header" not in result.stderr and "0 bytes" not in result.stdout


# -- one gate: what validate accepts, the runtime loads ----------------------------------------


def tokenizer_entries(data: bytes, count: int) -> int:
    """The byte offset just after the first `count` entries of a tokenizer file."""
    offset = 4
    for _ in range(count):
        offset += 8 + struct.unpack_from("<i", data, offset + 4)[0]
    return offset


def set_group_size(size: int):
    def change(data: bytes) -> bytes:
        start = struct.calcsize("<Ii7iB")
        return data[:start] + struct.pack("<i", size) + data[start + 4:]
    return change


def with_v1_shared_flag_cleared(data: bytes) -> bytes:
    flag = struct.calcsize("<Ii7i")
    return data[:flag] + b"\x00" + data[flag + 1:]


# (version to write stories260K in, change to the checkpoint, change to tok512.bin)
GATE_CASES = {
    "intact": (0, None, None),
    "intact Q8_0": (2, None, None),
    "tokenizer with a cut entry after the vocabulary": (0, None, lambda t: t + b"\x00\x00\x80"),
    "tokenizer with one token more": (0, None, lambda t: t + struct.pack("<fi", -1.0, 1) + b"z"),
    "tokenizer of another model": (0, None, lambda t: t[:tokenizer_entries(t, 300)]),
    "Q8_0 groups that do not divide the rows": (2, set_group_size(48), None),
    "Q8_0 group size 0": (2, set_group_size(0), None),
    "shared-classifier flag that lies": (1, with_v1_shared_flag_cleared, None),
}


@pytest.mark.parametrize("case", GATE_CASES)
def test_validate_accepts_exactly_what_the_runtime_loads(model_dir, checkpoint, tmp_path, case):
    """validate reads through the runtime's own readers, so for models without NaN or all-zero
    tensors its verdict is the runtime's: a `Session`, what the page opens (read_checkpoint,
    make_model and the tokenizer, as generate calls them)."""
    version, change_model, change_tokenizer = GATE_CASES[case]
    model = write_checkpoint(checkpoint, version)
    model = change_model(model) if change_model else model
    tokenizer = (model_dir / "tok512.bin").read_bytes()
    tokenizer = change_tokenizer(tokenizer) if change_tokenizer else tokenizer
    (tmp_path / "model.bin").write_bytes(model)
    (tmp_path / "tok.bin").write_bytes(tokenizer)
    try:
        Session(model, tokenizer)
        loads = True
    except Llama2npError:
        loads = False
    report = validate_model(tmp_path / "model.bin", tmp_path / "tok.bin")
    assert report.ok == loads, report.problems


def test_validate_refuses_a_pt_and_says_how_to_convert_it(tmp_path):
    """The runtime reads llama2.c files only: a sound .pt gets its full report and one problem."""
    tokenizer = tmp_path / "tok32.bin"
    write_tokenizer(tokenizer, 32)
    with pytest.raises(Llama2npError):
        Session((FIXTURES / "tiny_train.pt").read_bytes(), tokenizer.read_bytes())
    result = run_cli("validate", FIXTURES / "tiny_train.pt", "-z", tokenizer, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["format"] == PYTORCH_FORMAT and len(report["tensors"]) == 11
    assert report["tokenizer_vocab_size"] == 32
    assert len(report["problems"]) == 1 and "llama2np export" in report["problems"][0]
    assert result.stderr.startswith("llama2np: ") and "llama2np export" in result.stderr


def test_build_refuses_a_pt_and_says_how_to_convert_it(tmp_path):
    tokenizer = tmp_path / "tok32.bin"
    write_tokenizer(tokenizer, 32)
    result = run_cli("build", "--checkpoint", FIXTURES / "tiny_train.pt", "--tokenizer", tokenizer,
                     "--out", tmp_path / "site")
    assert result.returncode == 1, result.stderr
    assert "cannot load; convert it first with `llama2np export" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok32.bin"]


@pytest.mark.parametrize(("group_size", "block"), [(4, 1000), (1000, 100), (4000, 64), (80, 7)])
def test_q8_0_statistics_read_the_runtime_s_values_a_bounded_block_at_a_time(group_size, block):
    """However large a file's groups, a block of statistics holds at most `block` values (a
    hostile group size does not make validate hold a whole matrix), and the blocks are the
    float32 weights the runtime dequantises."""
    from llama2np.runtime.checkpoint import StoredQ8_0, _Reader

    rng = np.random.default_rng(group_size)
    layers, count = 2, 4000
    data = b"".join(rng.integers(-127, 128, count, dtype=np.int8).tobytes()
                    + rng.random(count // group_size, dtype=np.float32).astype("<f4").tobytes()
                    for _ in range(layers))
    stored = _Reader(memoryview(data), 0).stored_q8_0((layers, 40, 100), group_size)
    assert isinstance(stored, StoredQ8_0)
    blocks = list(stored.blocks(block))
    assert max(b.size for b in blocks) <= block
    runtime = _Reader(memoryview(data), 0).q8_0((layers, 40, 100), group_size)
    np.testing.assert_array_equal(np.concatenate(blocks), runtime.reshape(-1).astype(np.float64))
