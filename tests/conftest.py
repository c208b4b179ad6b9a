"""Shared fixtures: the stories260K model, fetched and verified through `llama2np fetch`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from llama2np.checkpoint import load_checkpoint
from llama2np.model import Transformer
from llama2np.tokenizer import Tokenizer
from llama2np.tools.fetch import DEFAULT_MODEL_DIR, MIRROR_VARIABLE, fetch

GOLDEN_T0 = "expected_t0.txt"
GOLDEN_T1 = "expected_t1_p0.9_s133742.txt"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The folder with stories260K.bin, tok512.bin, tok512.model and, from the mirror, the
    golden outputs. The files are verified against the manifest on the way."""
    fetch(DEFAULT_MODEL_DIR, quiet=True)
    mirror = os.environ.get(MIRROR_VARIABLE)
    return Path(mirror) if mirror else DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def golden(model_dir):
    """Read a golden output of run.c from the mirror (skip where no mirror is configured)."""

    def read(name: str) -> str:
        path = model_dir / name
        if not path.is_file():
            pytest.skip(f"{name} comes from the model mirror; set {MIRROR_VARIABLE}")
        return path.read_text(encoding="utf-8")

    return read


@pytest.fixture(scope="session")
def checkpoint(model_dir):
    return load_checkpoint(model_dir / "stories260K.bin")


@pytest.fixture(scope="session")
def tokenizer(model_dir, checkpoint):
    return Tokenizer.load(model_dir / "tok512.bin", checkpoint.config.vocab_size)


@pytest.fixture
def model(checkpoint):
    return Transformer(checkpoint)


def run_cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `llama2np ARGS` in a subprocess, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", "llama2np.cli", *map(str, args)],
        capture_output=True, text=True, encoding="utf-8", input=input, timeout=300,
    )
