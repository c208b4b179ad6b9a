"""`llama2np fetch`: verified files from a mirror or a download, clear failures otherwise."""

import hashlib
import json
import socket

import pytest
from llama2np.tools.models.fetch import MIRROR_VARIABLE
from support import run_cli


def write_manifest(folder, files: dict[str, bytes], url_base: str = "http://127.0.0.1:9/") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"files": {name: {"url": url_base + name, "size": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}
                          for name, data in files.items()}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def fetch(folder, monkeypatch, mirror=None):
    if mirror is None:
        monkeypatch.delenv(MIRROR_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(MIRROR_VARIABLE, str(mirror))
    return run_cli("fetch", folder)


def mirror_holding(tmp_path, data: bytes):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.bin").write_bytes(data)
    return mirror


def test_copies_and_verifies_from_the_mirror(tmp_path, monkeypatch):
    mirror = mirror_holding(tmp_path, b"model bytes")
    write_manifest(tmp_path / "model", {"a.bin": b"model bytes"})
    result = fetch(tmp_path / "model", monkeypatch, mirror)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "a.bin").read_bytes() == b"model bytes"
    assert "sha256 verified" in result.stderr
    again = fetch(tmp_path / "model", monkeypatch, mirror)  # present and intact: nothing to do
    assert again.returncode == 0 and again.stderr == ""


def test_wrong_hash_is_refused_and_not_kept(tmp_path, monkeypatch):
    mirror = mirror_holding(tmp_path, b"tampered")
    write_manifest(tmp_path / "model", {"a.bin": b"model bytes"})
    result = fetch(tmp_path / "model", monkeypatch, mirror)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "a.bin" in result.stderr and "not the manifest's" in result.stderr
    assert not (tmp_path / "model" / "a.bin").exists()
    assert not (tmp_path / "model" / "a.bin.part").exists()


def test_missing_file_in_mirror(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    write_manifest(tmp_path / "model", {"a.bin": b"x"})
    result = fetch(tmp_path / "model", monkeypatch, tmp_path / "mirror")
    assert result.returncode == 1
    assert "a.bin is not in the mirror folder" in result.stderr


def test_no_network_says_what_to_do(tmp_path, monkeypatch):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_manifest(tmp_path / "model", {"a.bin": b"x"}, f"http://127.0.0.1:{port}/")
    result = fetch(tmp_path / "model", monkeypatch)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "could not download" in result.stderr and MIRROR_VARIABLE in result.stderr


def test_missing_manifest(tmp_path, monkeypatch):
    result = fetch(tmp_path, monkeypatch)
    assert result.returncode == 1
    assert "manifest.json does not exist" in result.stderr


@pytest.mark.parametrize("name", ["stories260K.bin", "tok512.bin", "tok512.model"])
def test_project_model_is_in_place(model_dir, name):
    from llama2np.tools.models.fetch import DEFAULT_MODEL_DIR

    assert (DEFAULT_MODEL_DIR / name).is_file()


def golden_manifest(folder, golden: dict[str, bytes]) -> None:
    """A manifest with a.bin (b"model bytes") and the given golden outputs."""
    write_manifest(folder, {"a.bin": b"model bytes"})
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["golden"] = {name: {"source": "a test", "size": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}
                          for name, data in golden.items()}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_golden_outputs_come_from_the_mirror_verified(tmp_path, monkeypatch):
    mirror = mirror_holding(tmp_path, b"model bytes")
    (mirror / "g.txt").write_bytes(b"once upon a time")
    golden_manifest(tmp_path / "model", {"g.txt": b"once upon a time"})
    result = fetch(tmp_path / "model", monkeypatch, mirror)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "g.txt").read_bytes() == b"once upon a time"


def test_golden_outputs_missing_from_the_mirror_are_left_out_silently(tmp_path, monkeypatch):
    mirror = mirror_holding(tmp_path, b"model bytes")
    golden_manifest(tmp_path / "model", {"g.txt": b"once upon a time"})
    result = fetch(tmp_path / "model", monkeypatch, mirror)
    assert result.returncode == 0, result.stderr
    assert "g.txt" not in result.stderr and not (tmp_path / "model" / "g.txt").exists()


def test_a_wrong_golden_output_in_the_mirror_is_refused(tmp_path, monkeypatch):
    mirror = mirror_holding(tmp_path, b"model bytes")
    (mirror / "g.txt").write_bytes(b"once upon a dime")  # same size, other bytes
    golden_manifest(tmp_path / "model", {"g.txt": b"once upon a time"})
    result = fetch(tmp_path / "model", monkeypatch, mirror)
    assert result.returncode == 1 and "g.txt" in result.stderr and "not the manifest's" in result.stderr
    assert not (tmp_path / "model" / "g.txt").exists()


def test_the_project_manifest_lists_the_golden_stories_with_their_source():
    from llama2np.tools.models.fetch import DEFAULT_MODEL_DIR, read_manifest
    from support import GOLDEN_T0, GOLDEN_T1

    golden = read_manifest(DEFAULT_MODEL_DIR)["golden"]
    assert set(golden) == {GOLDEN_T0, GOLDEN_T1}
    assert all("run.c" in entry["source"] and "url" not in entry for entry in golden.values())


def test_golden_outputs_are_verified_in_the_model_folder(golden, model_dir):
    from llama2np.runtime.files import sha256_of
    from llama2np.tools.models.fetch import read_manifest
    from support import GOLDEN_T0

    entry = read_manifest(model_dir)["golden"][GOLDEN_T0]
    assert golden(GOLDEN_T0).startswith("Once upon a time")
    assert sha256_of(model_dir / GOLDEN_T0) == entry["sha256"]
