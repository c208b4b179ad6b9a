"""`llama2np build`: a complete, verified, content-addressed site, built offline once cached."""

import ast
import gzip
import hashlib
import json
import re
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import brotli
import pytest
from hostile import folder_state
from llama2np.runtime.errors import Llama2npError
from llama2np.tools.paths import DEFAULT_CACHE, PROJECT_ROOT
from llama2np.tools.site import sources
from llama2np.tools.site.build import build_site, write_model_list
from llama2np.tools.site.page_numpy import LINALG_KERNELS
from llama2np.tools.site.runtime_wheel import PACKAGE_DIR, runtime_modules
from llama2np.tools.site.sources import load_pins
from support import FIXTURES, run_cli, write_tokenizer

UNUSABLE = ("linalg", "random", "fft", "ma", "polynomial")  # not in the page's NumPy


def folder(site, prefix: str):
    (found,) = [p for p in site.iterdir() if p.is_dir() and p.name.startswith(prefix + "-")]
    return found


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quiet(*_):
    pass


def test_layout_and_page_references(built_site):
    names = sorted(p.name.split("-")[0] for p in built_site.iterdir() if p.is_dir())
    assert names == ["model", "models", "pyodide", "web"]
    page = (built_site / "index.html").read_text()
    for prefix, reference in (("web", "style.css"), ("web", "app.js"), ("pyodide", ""),
                              ("model", "manifest.json"), ("models", "models.json")):
        assert f'"{folder(built_site, prefix).name}/{reference}"' in page
    assert '"web/app.js"' not in page and '"pyodide/"' not in page


def test_folder_names_are_their_content_hashes(built_site):
    for directory in built_site.iterdir():
        if directory.is_dir():
            # The hash was taken before the .br/.gz siblings were written.
            digest = hashlib.sha256()
            for path in sorted(p for p in directory.rglob("*") if p.suffix not in (".br", ".gz")):
                digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
            assert directory.name.endswith("-" + digest.hexdigest()[:10])


def test_lock_lists_exactly_the_shipped_wheels_with_their_sha256(built_site):
    runtime = folder(built_site, "pyodide")
    lock = json.loads((runtime / "pyodide-lock.json").read_text())
    assert lock["info"]["version"] == "0.27.7" and lock["info"]["python"].startswith("3.12")
    assert set(lock["packages"]) == {"numpy", "llama2np"}
    for entry in lock["packages"].values():
        assert entry["sha256"] == sha256(runtime / entry["file_name"])
    assert lock["packages"]["llama2np"]["depends"] == ["numpy"]


def test_page_numpy_is_the_pinned_wheel_cut_to_what_the_page_imported(built_site):
    pin = load_pins()["numpy"]
    official = json.loads((DEFAULT_CACHE / "pyodide-0.27.7" / "pyodide-lock.json").read_text())
    assert pin["sha256"] == official["packages"]["numpy"]["sha256"]
    pinned = zipfile.ZipFile(DEFAULT_CACHE / pin["file"])
    page = zipfile.ZipFile(folder(built_site, "pyodide") / pin["file"])
    names = set(page.namelist())
    assert all(info.compress_type == zipfile.ZIP_STORED for info in page.infolist())
    assert not any(name.endswith(".py") for name in names)
    for name in names - {"numpy/linalg/_umath_linalg.pyc"}:
        source = name[:-1] if name.endswith(".pyc") else name
        assert source in pinned.namelist(), name
        if not name.endswith(".pyc"):
            assert page.read(name) == pinned.read(name), name  # libraries and data unchanged
    assert "numpy/_core/_multiarray_umath.cpython-312-wasm32-emscripten.so" in names
    assert LINALG_KERNELS not in names  # imported by numpy, never called: a stand-in says so
    assert not any(name.startswith(("numpy/random/", "numpy/fft/", "numpy/ma/")) for name in names)
    assert len(names) < len(pinned.namelist()) / 3


def test_python_library_is_pyodide_s_cut_to_what_the_page_imported(built_site):
    pinned = zipfile.ZipFile(DEFAULT_CACHE / "pyodide-0.27.7" / "python_stdlib.zip")
    page = zipfile.ZipFile(folder(built_site, "pyodide") / "python_stdlib.zip")
    names = page.namelist()
    assert all(info.compress_type == zipfile.ZIP_STORED for info in page.infolist())
    assert all(name.endswith(".pyc") and name[:-1] in pinned.namelist() for name in names)
    assert {"encodings/__init__.pyc", "zipfile/__init__.pyc", "_pyodide/__init__.pyc"} <= set(names)
    assert "unittest/__init__.pyc" not in names and len(names) < len(pinned.namelist()) / 2
    listing = json.loads((folder(built_site, "pyodide") / "files.json").read_text())
    assert "zipfile" in listing["preimport"] and "unittest" not in listing["preimport"]


def test_every_listed_file_names_its_compressed_siblings(built_site):
    runtime = folder(built_site, "pyodide")
    listing = json.loads((runtime / "files.json").read_text())
    for entry in [*listing["files"], *listing["brotli"], listing["probe"]]:
        path = runtime / entry["name"]
        assert entry["bytes"] == path.stat().st_size and entry["sha256"] == sha256(path)
        for suffix in ("br", "gz"):
            sibling = path.with_name(f"{path.name}.{suffix}")
            assert entry.get(suffix) == (sibling.stat().st_size if sibling.exists() else None)
    assert {"pyodide.js", "pyodide.asm.wasm", "python_stdlib.zip"} <= {e["name"] for e in listing["files"]}
    assert not (runtime / "pyodide.mjs").exists()  # a type stock nginx does not know


def test_runtime_wheel_holds_compiled_runtime_modules_only(built_site):
    (wheel,) = folder(built_site, "pyodide").glob("llama2np-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(n for n in names if n.startswith("llama2np/"))
    assert modules == sorted(f"llama2np/{m}.pyc" for m in runtime_modules())
    assert not any("tools" in n or "commands" in n for n in names)


def test_runtime_modules_import_only_the_standard_library_and_the_page_s_numpy():
    allowed = set(sys.stdlib_module_names) | {"numpy", "llama2np"}
    for module in runtime_modules():
        tree = ast.parse((PACKAGE_DIR / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [node.module.split(".")[0]]
                if node.module.startswith("llama2np."):
                    path = node.module.removeprefix("llama2np.").replace(".", "/")
                    assert {path, f"{path}/__init__"} & set(runtime_modules()), (module, node.module)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                # The page's NumPy has no linalg kernels (see tools/site/page_numpy.py).
                assert not (node.value.id in ("np", "numpy") and node.attr in UNUSABLE), (module, node.attr)
                continue
            else:
                continue
            assert set(roots) <= allowed, (module, roots)
            for name in (alias.name for alias in node.names):
                full = node.module + "." + name if isinstance(node, ast.ImportFrom) else name
                if full.startswith("numpy."):
                    assert full.split(".")[1] not in UNUSABLE, (module, full)


def test_model_manifest_matches_the_files(built_site, model_dir):
    model = folder(built_site, "model")
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["name"] == "stories260K"
    assert manifest["config"]["vocab_size"] == 512 and manifest["config"]["seq_len"] == 512
    sources = {"checkpoint": "stories260K.bin", "tokenizer": "tok512.bin"}
    for role, fixed in (("checkpoint", "model.bin"), ("tokenizer", "tokenizer.bin")):
        entry = manifest[role]
        assert entry["file"] == fixed  # fixed names in the site, whatever the files are called
        assert (model / entry["file"]).read_bytes() == (model_dir / sources[role]).read_bytes()
        assert entry["bytes"] == (model / entry["file"]).stat().st_size
        assert entry["sha256"] == sha256(model / entry["file"])


def test_runtime_file_list_gives_sizes_and_hashes(built_site):
    runtime = folder(built_site, "pyodide")
    files = json.loads((runtime / "files.json").read_text())["files"]
    assert {f["name"] for f in files} >= {"pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"}
    for entry in files:
        assert entry["bytes"] == (runtime / entry["name"]).stat().st_size
        assert entry["sha256"] == sha256(runtime / entry["name"])


def test_precompressed_files_decompress_to_the_original(built_site):
    compressed = list(built_site.rglob("*.br"))
    assert any(p.name == "pyodide.asm.wasm.br" for p in compressed)
    for br in compressed:
        original = br.with_suffix("").read_bytes()
        assert brotli.decompress(br.read_bytes()) == original
        gz = br.with_suffix(".gz")  # absent where gzip's larger header saves too little
        assert not gz.exists() or gzip.decompress(gz.read_bytes()) == original


def test_a_cached_build_needs_no_client_and_is_reproducible(built_site, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a cached build must not run npm or pip")

    monkeypatch.setattr(sources, "run_client", no_network)
    again = build_site(tmp_path / "again", log=quiet)
    assert folder_state(again) == folder_state(built_site)  # every file, byte for byte


def test_a_corrupt_cached_package_is_refused_with_a_sentence(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "pyodide-0.27.7.tgz").write_bytes(b"not the package")
    with pytest.raises(Llama2npError, match="does not match the integrity pinned in build/site.toml"):
        build_site(tmp_path / "out", cache=cache, log=quiet)
    assert not (cache / "pyodide-0.27.7.tgz").exists()  # removed, so a retry fetches it again
    assert not (tmp_path / "out").exists()


def test_an_unreachable_source_is_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm to be found
    result = run_cli("build", "--out", tmp_path / "out", "--cache", tmp_path / "empty-cache")
    assert result.returncode == 1
    assert "could not get pyodide@0.27.7: `npm` is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    result = run_cli("build", "--out", precious)
    assert result.returncode == 1 and "was not written by `llama2np build`" in result.stderr
    assert (precious / "notes.txt").read_text() == "mine"


def test_a_broken_model_is_refused_before_bundling(tmp_path, model_dir):
    broken = tmp_path / "broken.bin"
    broken.write_bytes((model_dir / "stories260K.bin").read_bytes()[:-100])
    result = run_cli("build", "--out", tmp_path / "out", "--checkpoint", broken,
                     "--tokenizer", model_dir / "tok512.bin")
    assert result.returncode == 1 and "is not a usable model" in result.stderr
    assert not (tmp_path / "out").exists()


def test_checkpoint_needs_its_tokenizer(tmp_path, model_dir):
    result = run_cli("build", "--out", tmp_path / "out", "--checkpoint", model_dir / "stories260K.bin")
    assert result.returncode == 2 and "--checkpoint and --tokenizer go together" in result.stderr


def test_any_validated_model_can_be_bundled(tmp_path):
    model = tmp_path / "tiny.bin"
    assert run_cli("export", FIXTURES / "tiny_train.pt", model).returncode == 0
    tokenizer = tmp_path / "tok32.bin"
    write_tokenizer(tokenizer, 32)
    site = build_site(tmp_path / "site", model, tokenizer, log=quiet)
    manifest = json.loads((folder(site, "model") / "manifest.json").read_text())
    assert manifest["name"] == "tiny" and manifest["format"] == "llama2.c version 0 (legacy fp32)"
    assert manifest["config"]["dim"] == 16 and manifest["parameters"] == 6736
    assert manifest["checkpoint"]["sha256"] == sha256(model)


def test_the_site_lists_its_models_for_the_picker(built_site, model_dir):
    (models,) = json.loads((folder(built_site, "models") / "models.json").read_text()).values()
    model = folder(built_site, "model")
    size = (model_dir / "stories260K.bin").stat().st_size + (model_dir / "tok512.bin").stat().st_size
    parameters = json.loads((model / "manifest.json").read_text())["parameters"]
    assert models == [{"name": "stories260K", "parameters": parameters, "bytes": size,
                       "manifest": f"{model.name}/manifest.json"}]


def test_models_of_one_name_are_told_apart_in_the_list(tmp_path):
    folders = []
    for digest in ("aaaaaaaaaa", "bbbbbbbbbb"):
        model = tmp_path / f"model-{digest}"
        model.mkdir()
        (model / "manifest.json").write_text(json.dumps({
            "name": "mine", "parameters": 5, "checkpoint": {"bytes": 10}, "tokenizer": {"bytes": 2}}))
        folders.append(model)
    listed = json.loads((write_model_list(folders, tmp_path / "models") / "models.json").read_text())
    assert [m["name"] for m in listed["models"]] == ["mine (aaaaaaaa)", "mine (bbbbbbbb)"]
    assert [m["bytes"] for m in listed["models"]] == [12, 12]


def test_each_model_is_validated_and_named_once(tmp_path, model_dir):
    model = (model_dir / "stories260K.bin", model_dir / "tok512.bin")
    result = run_cli("build", "--out", tmp_path / "out", "--checkpoint", model[0], "--tokenizer",
                     model[1], "--model", *model)
    assert result.returncode == 2 and "is named twice" in result.stderr
    broken = tmp_path / "broken.bin"
    broken.write_bytes(model[0].read_bytes()[:-100])
    result = run_cli("build", "--out", tmp_path / "out", "--model", *model, "--model", broken, model[1])
    assert result.returncode == 1 and "is not a usable model" in result.stderr
    assert not (tmp_path / "out").exists()
    result = run_cli("build", "--out", tmp_path / "out", "--model", model[0])
    assert result.returncode == 2 and "--model" in result.stderr


def test_a_tokenizer_that_does_not_fit_is_refused(tmp_path, model_dir):
    tokenizer = tmp_path / "tok32.bin"
    write_tokenizer(tokenizer, 32)
    result = run_cli("build", "--out", tmp_path / "out", "--checkpoint", model_dir / "stories260K.bin",
                     "--tokenizer", tokenizer)
    assert result.returncode == 1 and "holds 32 tokens but the model's vocabulary has 512" in result.stderr


def test_a_missing_node_is_a_sentence(tmp_path, monkeypatch):
    from llama2np.tools.site import trace

    monkeypatch.setattr(trace.shutil, "which", lambda name: None)
    with pytest.raises(Llama2npError, match="needs Node.js"):
        trace.trace_runtime(tmp_path, tmp_path / "m.bin", tmp_path / "t.bin")


def test_a_runtime_that_does_not_start_in_node_is_a_sentence(tmp_path):
    from llama2np.tools.site.trace import trace_runtime

    (tmp_path / "pyodide.js").write_text("throw new Error('not Pyodide');\n")
    with pytest.raises(Llama2npError, match="the page's Python failed in Node"):
        trace_runtime(tmp_path, tmp_path / "m.bin", tmp_path / "t.bin")


def test_an_old_node_is_named_before_it_runs(tmp_path, monkeypatch):
    from llama2np.tools.site.trace import trace_runtime

    old = tmp_path / "bin" / "node"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho v16.20.2\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(old.parent))
    with pytest.raises(Llama2npError, match=r"needs Node.js 18 or newer, and `node` here is v16\.20\.2"):
        trace_runtime(tmp_path, tmp_path / "m.bin", tmp_path / "t.bin")


def test_a_memory_limit_is_named_as_such(built_site, model_dir):
    """Under `ulimit -v`, Node cannot reserve WebAssembly's address space: the sentence says so,
    instead of quoting the minified code around Node's error or blaming its version."""
    runtime = next(built_site.glob("pyodide-*"))
    script = ("import sys; from pathlib import Path; from llama2np.tools.site.trace import run_trace\n"
              "try:\n    run_trace(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))\n"
              "except Exception as error:\n    print(error)\n")
    limit = 4 << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run([sys.executable, "-c", script, runtime, model_dir / "stories260K.bin",
                           model_dir / "tok512.bin"], capture_output=True, text=True, preexec_fn=cap,
                          timeout=300)
    assert "lift a `ulimit -v` limit" in done.stdout, done.stdout + done.stderr
    assert "var " not in done.stdout and "18 or newer" not in done.stdout


def test_node_s_error_line_is_quoted_never_its_code():
    from llama2np.tools.site.trace import node_failure

    stderr = "var Module=Object.assign({}," + "x" * 5000 + "\n\nTypeError: bad thing\n    at run (x.js:1:2)\n"
    assert node_failure(1, stderr) == "the page's Python failed in Node (TypeError: bad thing); retry, or report it."


def fake_node(folder: Path, behaviour: str) -> None:
    """A `node` first on PATH that answers --version as Node 20 and otherwise runs `behaviour`."""
    node = folder / "bin" / "node"
    node.parent.mkdir()
    node.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo v20.0.0; exit 0; fi\n{behaviour}\n')
    node.chmod(0o755)


@pytest.mark.parametrize(("behaviour", "phrase"), [
    ("yes aaaaaaaaaaaaaaaaaaaaaaaa", "printed more than 16 MB"),  # output without end
    ("sleep 30 & exit 1", "failed in Node (no output)"),  # a child keeps the pipes open
    ("exec >&- 2>&-; sleep 30", "took over 5 s to run the page's Python"),  # closes its output
    ("sleep 30 >/dev/null 2>&1 & echo '{}'; exit 3", "failed in Node"),  # leaves a child behind
    ("kill -9 $$", "stopped by SIGKILL"),  # as the system does when memory runs out
    ("printf '\\377\\376{'", "printed no list of modules"),  # not text, not JSON
    ('echo \'{"modules": {"a": 1}}\'', "printed no list of modules"),  # JSON of another shape
])
def test_a_node_that_misbehaves_is_one_sentence_in_bounded_time(tmp_path, monkeypatch, model_dir,
                                                                 behaviour, phrase):
    from llama2np.tools.site import trace
    from llama2np.tools.site.trace import trace_runtime

    fake_node(tmp_path, behaviour)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr(trace, "TIMEOUT_SECONDS", 5)
    start = time.monotonic()
    with pytest.raises(Llama2npError, match=re.escape(phrase)):
        trace_runtime(tmp_path, model_dir / "stories260K.bin", model_dir / "tok512.bin")
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("entry", ['{"modules": 5}', '{"modules": []}', '{"modules": {"a": 1}}', "\udcff"])
def test_a_cached_trace_of_the_wrong_shape_is_run_again(tmp_path, monkeypatch, model_dir, entry):
    from llama2np.tools.site import trace

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    model = (model_dir / "stories260K.bin", model_dir / "tok512.bin")
    (tmp_path / "traces").mkdir()
    key = trace.inputs_hash(runtime, *model)
    (tmp_path / "traces" / f"{key}.json").write_text(entry, errors="surrogateescape")
    monkeypatch.setattr(trace.shutil, "which", lambda name: None)  # a run would need Node
    with pytest.raises(Llama2npError, match="needs Node.js"):
        trace.trace_runtime(runtime, *model, tmp_path / "traces")


def test_large_files_are_compressed_only_where_it_pays(tmp_path):
    """Above SAMPLED_ABOVE a file is sampled first: noise is left alone; model weights (float32,
    about 8% saved) are packed at the fast setting, not for minutes at the best, and keep their
    siblings by the 5% rule (a first visit downloads the model); a file that hardly compresses
    gets the fast setting's; one that packs well keeps the best setting."""
    import gzip

    import numpy as np
    from llama2np.tools.site import assets

    rng = np.random.default_rng(1)
    weights = rng.standard_normal(6 << 18, dtype=np.float32).tobytes()  # 6 MiB
    hardly = rng.integers(0, 256, 6 << 20, dtype=np.uint8)
    hardly[::4] = 0  # a quarter of the bytes known: about 15% saved
    packs = rng.integers(0, 256, 6 << 20, dtype=np.uint8)
    packs[::3], packs[1::3] = 0, 0
    assert len(weights) > assets.SAMPLED_ABOVE
    assert assets.brotli_quality(rng.bytes(6 << 20)) is None  # noise: not even tried
    assert assets.brotli_quality(weights) == assets.FAST_QUALITY  # tried fast, then dropped
    assert assets.brotli_quality(hardly.tobytes()) == assets.FAST_QUALITY
    assert assets.brotli_quality(packs.tobytes()) == assets.BEST_QUALITY
    assert assets.brotli_quality(weights[: 1 << 20]) == assets.BEST_QUALITY  # small: as before

    (tmp_path / "model.bin").write_bytes(weights)
    (tmp_path / "hardly.bin").write_bytes(hardly.tobytes())
    assets.precompress(tmp_path, tmp_path / "cache")
    assert len((tmp_path / "model.bin.br").read_bytes()) <= 0.95 * len(weights)
    (tmp_path / "noise.bin").write_bytes(rng.bytes(6 << 20))
    assets.precompress(tmp_path, tmp_path / "cache")
    assert not (tmp_path / "noise.bin.br").exists() and not (tmp_path / "noise.bin.gz").exists()
    assert brotli.decompress((tmp_path / "hardly.bin.br").read_bytes()) == hardly.tobytes()
    assert gzip.decompress((tmp_path / "hardly.bin.gz").read_bytes()) == hardly.tobytes()
    assert all(p.name.endswith(".q5.br") for p in (tmp_path / "cache").iterdir())


def test_the_service_worker_sits_at_the_root_to_control_the_page(built_site):
    source = PROJECT_ROOT / "web" / "service-worker.js"
    assert (built_site / "service-worker.js").read_bytes() == source.read_bytes()
    assert not (folder(built_site, "web") / "service-worker.js").exists()


def test_the_page_links_the_source_it_runs(built_site):
    """The footer's source link reaches a zip of the package, the page, the pins and the
    manifest, each file as it is in this checkout."""
    from llama2np.tools.site.source_archive import ARCHIVE_NAME

    web = folder(built_site, "web")
    assert f'href="{web.name}/{ARCHIVE_NAME}"' in (built_site / "index.html").read_text()
    with zipfile.ZipFile(web / ARCHIVE_NAME) as archive:
        names = set(archive.namelist())
        for name in ("py/llama2np/runtime/model/fused.py", "py/llama2np/tools/site/build.py",
                     "py/llama2np/tools/site/trace.mjs", "index.html", "web/app.js",
                     "web/worker.js", "build/site.toml", "stories260K/manifest.json",
                     "pyproject.toml"):
            assert archive.read(name) == (PROJECT_ROOT / name).read_bytes(), name
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    packaged = {f"py/{p.relative_to(PACKAGE_DIR.parent).as_posix()}"
                for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    assert packaged <= names


def test_a_trace_that_lacks_what_every_page_imports_is_refused_and_not_kept(tmp_path, monkeypatch,
                                                                             model_dir):
    """A node that prints a list without running the page: refused, and not cached, so that
    the retry the sentence advises runs it again."""
    from llama2np.tools.site import trace

    printed = '{"modules": {"numpy": "/lib/python3.12/site-packages/numpy/__init__.pyc"}}'
    fake_node(tmp_path, f"echo '{printed}'")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    model = (model_dir / "stories260K.bin", model_dir / "tok512.bin")
    with pytest.raises(Llama2npError, match="did not import _pyodide; retry"):
        trace.trace_runtime(tmp_path, *model, tmp_path / "traces")
    assert not any((tmp_path / "traces").glob("*.json"))


def test_a_trace_of_the_same_inputs_comes_from_the_cache(tmp_path, monkeypatch, model_dir):
    from llama2np.tools.site import trace

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "pyodide.js").write_text("// the runtime's files, whatever they are\n")
    model = (model_dir / "stories260K.bin", model_dir / "tok512.bin")
    key = trace.inputs_hash(runtime, *model)
    (tmp_path / "traces").mkdir()
    modules = {"numpy": "/lib/x", "encodings": "/lib/y", "_pyodide": "/lib/z"}
    (tmp_path / "traces" / f"{key}.json").write_text(json.dumps({"modules": modules}))
    monkeypatch.setattr(trace.shutil, "which", lambda name: None)  # Node would be needed
    assert trace.trace_runtime(runtime, *model, tmp_path / "traces").modules == modules
    (runtime / "pyodide.js").write_text("// changed\n")
    with pytest.raises(Llama2npError, match="needs Node.js"):
        trace.trace_runtime(runtime, *model, tmp_path / "traces")
