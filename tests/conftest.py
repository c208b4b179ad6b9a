"""Shared fixtures: the stories260K model, fetched and verified through `llama2np fetch`."""

import os
from pathlib import Path

import pytest
from llama2np.checkpoint import load_checkpoint
from llama2np.model import Transformer
from llama2np.tokenizer import Tokenizer
from llama2np.tools.models.fetch import DEFAULT_MODEL_DIR, MIRROR_VARIABLE, fetch


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


@pytest.fixture(scope="session")
def built_site(tmp_path_factory, model_dir) -> Path:
    """The demo site, built once per test session by `llama2np build` (sources from the cache
    in .cache/site-sources, fetched with npm and pip on the first run)."""
    from llama2np.tools.site.build import build_site

    return build_site(tmp_path_factory.mktemp("site") / "dist", log=lambda *_: None)
