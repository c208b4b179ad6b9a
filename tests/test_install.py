"""`pip install llama2np` gives a working tool: the sdist and the wheel are built from this
checkout, the wheel goes into a fresh virtual environment with NumPy as its only dependency,
and the installed `llama2np` runs from an empty folder far from any checkout.

The build and the install use pip's own configuration and cache, as scripts/setup.sh does.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import llama2np as llama2np_package
import pytest
from llama2np.extras import EXTRA_OF_COMMAND, EXTRA_OF_MODULE, missing_extra

CHECKOUT = Path(__file__).resolve().parents[1]
PACKAGE = CHECKOUT / "py" / "llama2np"
# What the installed tool needs from the checkout besides Python modules: checkout path -> path
# in the wheel.
PROJECT_FILES = {
    "index.html": "llama2np/data/index.html",
    "build/site.toml": "llama2np/data/build/site.toml",
    "stories260K/manifest.json": "llama2np/data/stories260K/manifest.json",
    **{f"web/{p.name}": f"llama2np/data/web/{p.name}" for p in (CHECKOUT / "web").iterdir()},
    "py/llama2np/tools/site/trace.mjs": "llama2np/tools/site/trace.mjs",
}
TIMEOUT = 180  # a bound against hangs of pip or the build, not a speed requirement


def run(*command: object, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def clean_env(**extra: str) -> dict:
    """This environment without what would import the checkout's code instead of the installed
    code (PYTHONPATH, the test run's virtual environment, the user's site-packages)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist, and the wheel that `build` makes from that sdist (so the wheel shows that the
    sdist holds everything)."""
    out = tmp_path_factory.mktemp("dist")
    # From a copy of the sources: other tests may be writing caches and results in the checkout
    # meanwhile (pytest -n 2), and `build` writes its egg-info beside the sources.
    source = tmp_path_factory.mktemp("source") / "llama2np"
    shutil.copytree(CHECKOUT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".cache", "dist", "test-results", "__pycache__", "*.egg-info", ".*_cache"))
    result = run(sys.executable, "-m", "build", "--outdir", out, source, cwd=out, env=clean_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def venv(tmp_path_factory, dist) -> Path:
    """A fresh virtual environment (no system site packages) with the wheel and its dependencies."""
    folder = tmp_path_factory.mktemp("venv")
    (wheel,) = dist.glob("llama2np-*.whl")
    result = run(sys.executable, "-m", "venv", folder, cwd=folder, env=clean_env())
    assert result.returncode == 0, result.stderr
    result = run(folder / "bin" / "python", "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", wheel, cwd=folder, env=clean_env())
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


@pytest.fixture
def cache(tmp_path) -> Path:
    """$XDG_CACHE_HOME for the installed tool."""
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


@pytest.fixture
def llama2np(venv, tmp_path, cache, model_dir):
    """Run the installed `llama2np` (its console script) from an empty folder outside the
    checkout, with the per-user cache in tmp_path and the test run's model files as the mirror."""
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(HOME=str(tmp_path), XDG_CACHE_HOME=str(cache),
                    LLAMA2NP_MODEL_MIRROR=str(model_dir))

    def call(*args: object) -> subprocess.CompletedProcess:
        return run(venv / "bin" / "llama2np", *args, cwd=work, env=env)

    call.folder = work
    return call


def test_wheel_holds_every_module_and_the_projects_files(dist):
    (wheel,) = dist.glob("llama2np-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"llama2np/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*.py")}
    assert modules - names == set()  # pyproject.toml lists every package
    for source, member in PROJECT_FILES.items():
        assert zipfile.ZipFile(wheel).read(member) == (CHECKOUT / source).read_bytes(), member


def test_wheel_depends_on_numpy_alone(dist):
    (wheel,) = dist.glob("llama2np-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    required = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    assert [r for r in required if "extra ==" not in r] == ["numpy>=2.0"]


def test_sdist_holds_the_manifest_page_pins_and_trace_script(dist):
    (sdist,) = dist.glob("llama2np-*.tar.gz")
    with tarfile.open(sdist) as archive:
        root = archive.getnames()[0].split("/")[0]
        for source in PROJECT_FILES:
            member = archive.extractfile(f"{root}/{source}")
            assert member is not None and member.read() == (CHECKOUT / source).read_bytes(), source


def test_version(llama2np):
    result = llama2np("--version")
    assert result.returncode == 0, result.stderr
    assert llama2np_package.__version__ in result.stdout


def test_generate_tells_the_golden_story(llama2np, model_dir, golden):
    result = llama2np("generate", model_dir / "stories260K.bin", "-z", model_dir / "tok512.bin",
                      "-t", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == golden("expected_t0.txt") + "\n"  # run.c ends with a newline


def test_fetch_and_validate_use_the_user_cache(llama2np, cache, venv, model_dir):
    installed = venv / "lib" / "python3.12" / "site-packages" / "llama2np"
    before = sorted(p.relative_to(installed) for p in installed.rglob("*") if "__pycache__" not in p.parts)
    result = llama2np("fetch")
    assert result.returncode == 0, result.stderr
    folder = cache / "llama2np" / "stories260K"
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert sha256_of(folder / name) == entry["sha256"], name
    result = llama2np("validate", folder / "stories260K.bin", "-z", folder / "tok512.bin")
    assert result.returncode == 0, result.stderr
    # Nothing landed in the working folder or in the installation.
    assert list(llama2np.folder.iterdir()) == []
    after = sorted(p.relative_to(installed) for p in installed.rglob("*") if "__pycache__" not in p.parts)
    assert after == before


@pytest.mark.parametrize("where", ["xdg", "xdg/llama2np"])
def test_a_cache_setting_that_names_a_file_is_named(llama2np, venv, tmp_path, where):
    """XDG_CACHE_HOME (or the folder the tool makes in it) is a file: the sentence names the
    setting as the cause, not a missing manifest or an internal error."""
    blocker = tmp_path / where
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    result = run(venv / "bin" / "llama2np", "fetch", cwd=llama2np.folder,
                 env=clean_env(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "xdg")))
    assert result.returncode == 1, result.stderr
    assert f"(llama2np's cache, placed by XDG_CACHE_HOME={tmp_path / 'xdg'})" in result.stderr
    assert "internal error" not in result.stderr and result.stderr.count("\n") == 1
    assert blocker.read_text() == "not a folder"


def test_installed_defaults_are_outside_the_installation(llama2np, venv, cache):
    code = ("from llama2np.tools import paths; "
            "print(paths.DEFAULT_SITE, paths.DEFAULT_CACHE, paths.DEFAULT_MODEL_DIR, paths.PINS_FILE)")
    result = run(venv / "bin" / "python", "-c", code, cwd=llama2np.folder,
                 env=clean_env(XDG_CACHE_HOME=str(cache)))
    assert result.returncode == 0, result.stderr
    site, downloads, model, pins = map(Path, result.stdout.split())
    assert site == Path("dist")  # in the current folder
    assert downloads == cache / "llama2np" / "site-sources"
    assert model == cache / "llama2np" / "stories260K"
    assert pins.is_file() and pins.is_relative_to(venv)


def test_serve_help(llama2np):
    result = llama2np("serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: llama2np serve" in result.stdout


@pytest.mark.parametrize(("command", "extra"), [
    (["build"], "site"),
    (["train-tokenizer", "--input", "corpus.txt", "--vocab-size", "300", "--out", "tok"], "tokenizer"),
    (["export-tokenizer", "tok.model"], "tokenizer"),
])
def test_a_command_names_its_missing_extra(llama2np, command, extra):
    result = llama2np(*command)
    assert result.returncode == 1
    assert result.stderr == (f"llama2np: `llama2np {command[0]}` needs the optional packages of "
                             f"llama2np[{extra}]; run: pip install 'llama2np[{extra}]'\n")
    assert list(llama2np.folder.iterdir()) == []


def test_every_extra_named_for_a_missing_module_exists():
    extras = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRA_OF_MODULE.values()) | set(EXTRA_OF_COMMAND.values()) <= set(extras)
    for module in EXTRA_OF_MODULE:  # the dev tool chain has them all: the names are real modules
        __import__(module)


def test_an_unknown_missing_module_is_named():
    sentence = missing_extra("generate", ModuleNotFoundError("No module named 'zzz'", name="zzz"))
    assert sentence.startswith("`llama2np generate` could not import the Python module zzz;")
    sentence = missing_extra("bench", ModuleNotFoundError("No module named 'brotli'", name="brotli"))
    assert sentence.endswith("run: pip install 'llama2np[bench]'")
