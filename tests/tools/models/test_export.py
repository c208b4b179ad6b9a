"""Checkpoint conversion: llama2.c versions 0-2 and train.py .pt files read without PyTorch."""

import dataclasses
import json
import os
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from llama2np.runtime.checkpoint import Checkpoint, load_checkpoint, read_checkpoint
from llama2np.runtime.model import make_model
from llama2np.tools.models.checkpoint_writer import (
    fitting_group_size,
    quantize_q8_0,
    rope_tables,
    write_checkpoint,
)
from llama2np.tools.models.pickle_reader import load_pt
from llama2np.tools.models.torch_checkpoint import checkpoint_from_pt, checkpoint_from_saved
from support import FIXTURES, GOLDEN_T0, GOLDEN_T1, run_cli, write_tokenizer

LAYER_FIELDS = {"wq": "attention.wq.weight", "wk": "attention.wk.weight", "wv": "attention.wv.weight",
                "wo": "attention.wo.weight", "w1": "feed_forward.w1.weight",
                "w2": "feed_forward.w2.weight", "w3": "feed_forward.w3.weight",
                "rms_att": "attention_norm.weight", "rms_ffn": "ffn_norm.weight"}


def story(model_dir, checkpoint_path, temperature=0.0, seed=1) -> str:
    result = run_cli("generate", checkpoint_path, "-z", model_dir / "tok512.bin",
                     "-t", str(temperature), "-p", "0.9", "-s", str(seed))
    assert result.returncode == 0, result.stderr
    return result.stdout[:-1]


@pytest.mark.parametrize("version", [1, 2])
def test_versions_written_from_version_0_load_and_generate(tmp_path, model_dir, checkpoint, tokenizer,
                                                           golden, version):
    path = tmp_path / f"v{version}.bin"
    assert run_cli("export", model_dir / "stories260K.bin", path, "--version", str(version)).returncode == 0
    loaded = load_checkpoint(path)
    assert loaded.version == version and loaded.config == checkpoint.config
    tokens = tokenizer.encode(golden(GOLDEN_T1))[:200]
    reference = make_model(checkpoint).forward(tokens, 0)
    logits = make_model(loaded).forward(tokens, 0)
    if version == 1:
        assert np.array_equal(logits, reference)
        assert story(model_dir, path) == golden(GOLDEN_T0)
        assert story(model_dir, path, 1.0, 133742) == golden(GOLDEN_T1)
    else:
        assert path.stat().st_size < (model_dir / "stories260K.bin").stat().st_size / 1.9  # groups of 4
        # int8 weights: logits within a few percent, mostly the same likeliest next token
        assert np.abs(logits - reference).max() < 0.05 * np.abs(reference).max()
        assert np.corrcoef(logits.ravel(), reference.ravel())[0, 1] > 0.999
        assert (logits.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.8


def test_exporting_a_file_to_its_own_version_gives_it_back_byte_for_byte(tmp_path, model_dir):
    original = model_dir / "stories260K.bin"
    copies = [original]
    for version in (0, 1, 2, 0):  # version 0's RoPE tables travel through none of the others
        copies.append(tmp_path / f"{len(copies)}-v{version}.bin")
        result = run_cli("export", copies[-2], copies[-1], "--version", str(version))
        assert result.returncode == 0, result.stderr
        again = tmp_path / f"{len(copies)}-again.bin"
        assert run_cli("export", copies[-1], again, "--version", str(version)).returncode == 0
        assert again.read_bytes() == copies[-1].read_bytes(), version
    assert copies[1].read_bytes() == original.read_bytes()


def test_computed_rope_tables_are_within_one_unit_of_pytorch_s(checkpoint):
    """stories260K.bin's tables were computed by PyTorch (llama2.c's model.py); the tables a
    .pt or a version 1 or 2 file gets are the nearest float32 to the true values."""
    torch_cos, torch_sin = checkpoint.rope_tables
    ours = rope_tables(checkpoint.config)
    for theirs, mine in zip((torch_cos, torch_sin), ours, strict=True):
        units = np.abs(theirs.view(np.int32).astype(np.int64) - mine.view(np.int32))
        assert units.max() <= 1 and (units > 0).mean() < 0.06


def test_version_2_groups_fit_every_row_length(checkpoint):
    """runq.c groups each row of a product on its own: the group size divides dim and
    hidden_dim (stories260K: 64 and 172, so 4)."""
    written = read_checkpoint(write_checkpoint(checkpoint, 2))
    c = written.config
    assert written.group_size == 4 and c.dim % 4 == 0 and c.hidden_dim % 4 == 0
    for config in (c, dataclasses.replace(c, hidden_dim=256),
                   dataclasses.replace(c, dim=48, hidden_dim=128)):
        size = fitting_group_size(config, 64)
        assert config.dim % size == 0 and config.hidden_dim % size == 0
        assert config.dim % (2 * size) or config.hidden_dim % (2 * size) or size == 64


def test_q8_0_groups_round_trip_within_half_a_step():
    values = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    q, scales = quantize_q8_0(values, 64)
    assert q.dtype == np.int8 and scales.shape == (4,) and np.abs(q).max() == 127
    restored = (q.reshape(4, 64) * scales[:, None]).ravel()
    assert np.all(np.abs(restored - values) <= np.repeat(scales, 64) / 2 + 1e-7)


def test_train_py_checkpoint_reads_as_torch_saved_it():
    checkpoint = checkpoint_from_pt((FIXTURES / "tiny_train.pt").read_bytes(), "tiny_train.pt")
    expected = np.load(FIXTURES / "tiny_train_expected.npz")
    w, c = checkpoint.weights, checkpoint.config
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len) == (16, 48, 2, 4, 2, 32, 32)
    assert checkpoint.shared_classifier
    assert np.array_equal(w.token_embedding, expected["tok_embeddings.weight"])
    assert np.array_equal(w.rms_final, expected["norm.weight"])
    for field, key in LAYER_FIELDS.items():
        for layer in range(c.n_layers):
            assert np.array_equal(getattr(w, field)[layer], expected[f"layers.{layer}.{key}"]), (field, layer)


def test_torch_compile_prefix_is_dropped():
    saved = load_pt((FIXTURES / "tiny_train.pt").read_bytes(), "tiny_train.pt")
    plain = checkpoint_from_saved(saved, "tiny_train.pt")
    saved["model"] = {f"_orig_mod.{key}": value for key, value in saved["model"].items()}
    compiled = checkpoint_from_saved(saved, "tiny_train.pt")
    assert compiled.config == plain.config
    assert np.array_equal(compiled.weights.wq, plain.weights.wq)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_an_unshared_classifier_survives_every_version(checkpoint, version):
    """A classifier of its own: version 0 says so with a negative vocabulary size, 1 and 2 with
    the shared flag; either way it comes back as its own matrix."""
    weights = dataclasses.replace(checkpoint.weights, wcls=checkpoint.weights.token_embedding[::-1] * 0.5)
    unshared = Checkpoint(checkpoint.config, weights, 0, False)
    data = write_checkpoint(unshared, version)
    if version == 0:
        assert int.from_bytes(data[20:24], "little", signed=True) == -checkpoint.config.vocab_size
    loaded = read_checkpoint(data, f"v{version}.bin")
    assert loaded.shared_classifier is False
    tolerance = 0 if version < 2 else np.abs(weights.wcls).max() / 127
    np.testing.assert_allclose(loaded.weights.wcls, weights.wcls, rtol=0, atol=tolerance)


def test_train_py_checkpoint_exports_validates_and_generates(tmp_path):
    out = tmp_path / "tiny.bin"
    result = run_cli("export", FIXTURES / "tiny_train.pt", out, "--version", "2")
    assert result.returncode == 0, result.stderr
    assert "version 2 (Q8_0)" in result.stdout
    tokenizer = tmp_path / "tok32.bin"
    write_tokenizer(tokenizer, 32)
    validated = run_cli("validate", out, "-z", tokenizer)
    assert validated.returncode == 0 and validated.stdout.rstrip().endswith("OK"), validated.stderr
    generated = run_cli("generate", out, "-z", tokenizer, "-t", "0", "-n", "20")
    assert generated.returncode == 0, generated.stderr


class RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["validate", "export"])
def test_a_pickle_that_would_run_a_command_is_refused_and_never_runs(tmp_path, command):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"model": RunsShell(marker), "model_args": {}}))
        archive.writestr("archive/version", "3\n")
    args = [evil] if command == "validate" else [evil, tmp_path / "out.bin"]
    result = run_cli(command, *args)
    assert result.returncode == 1
    assert "asks to run posix.system, which a checkpoint never needs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out.bin").exists()


def test_a_damaged_pt_is_a_sentence(tmp_path):
    data = bytearray((FIXTURES / "tiny_train.pt").read_bytes())
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data[: len(data) // 2]))
    result = run_cli("validate", damaged)
    assert result.returncode == 1 and "damaged PyTorch file" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_refuses_unknown_version_and_overwriting(tmp_path, model_dir):
    assert run_cli("export", model_dir / "stories260K.bin", tmp_path / "x.bin", "--version", "3").returncode == 2
    model = tmp_path / "model.bin"  # a copy: a regression must not destroy the project's model
    model.write_bytes((model_dir / "stories260K.bin").read_bytes())
    same = run_cli("export", model, model)
    assert same.returncode == 2 and "is also an input of this command" in same.stderr
    assert model.read_bytes() == (model_dir / "stories260K.bin").read_bytes()


@pytest.mark.torch
def test_real_model_saved_by_torch_exports_back_to_run_c_s_stories(tmp_path, model_dir, checkpoint, golden):
    """stories260K's weights saved with torch.save as train.py would, read back without PyTorch,
    exported to .bin: the golden stories again. Needs LLAMA2NP_TORCH_PYTHON, a Python with torch."""
    python = os.environ.get("LLAMA2NP_TORCH_PYTHON")
    if not python:
        pytest.skip("set LLAMA2NP_TORCH_PYTHON to a Python that has PyTorch")
    w, c = checkpoint.weights, checkpoint.config
    arrays = {"tok_embeddings.weight": w.token_embedding, "norm.weight": w.rms_final}
    for field, key in LAYER_FIELDS.items():
        for layer in range(c.n_layers):
            arrays[f"layers.{layer}.{key}"] = getattr(w, field)[layer]
    np.savez(tmp_path / "weights.npz", **arrays)
    (tmp_path / "args.json").write_text(json.dumps(dict(
        dim=c.dim, n_layers=c.n_layers, n_heads=c.n_heads, n_kv_heads=c.n_kv_heads,
        vocab_size=c.vocab_size, hidden_dim=c.hidden_dim, multiple_of=4, max_seq_len=c.seq_len)))
    subprocess.run([python, FIXTURES / "save_as_train_pt.py", tmp_path / "weights.npz",
                    tmp_path / "args.json", tmp_path / "model.pt"], check=True)
    result = run_cli("export", tmp_path / "model.pt", tmp_path / "model.bin", "--version", "0")
    assert result.returncode == 0, result.stderr
    assert story(model_dir, tmp_path / "model.bin") == golden(GOLDEN_T0)
    assert story(model_dir, tmp_path / "model.bin", 1.0, 133742) == golden(GOLDEN_T1)
