"""Shared fixtures: the stories260K model, fetched and verified through `llama2np fetch`."""

from pathlib import Path

import pytest
from llama2np.runtime.checkpoint import load_checkpoint
from llama2np.runtime.model import make_model
from llama2np.runtime.tokenizer import Tokenizer
from llama2np.tools.models.fetch import (
    DEFAULT_MODEL_DIR,
    MIRROR_VARIABLE,
    fetch,
    is_verified,
    read_manifest,
)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The project's model folder with stories260K.bin, tok512.bin and tok512.model, put there
    and verified against the manifest by `llama2np fetch` (with the golden outputs too, when the
    files come from LLAMA2NP_MODEL_MIRROR)."""
    return fetch(DEFAULT_MODEL_DIR, quiet=True)


@pytest.fixture(scope="session")
def golden(model_dir):
    """Read a golden output of run.c, verified against the manifest's sha256. A byte-for-byte
    test without its reference must fail, not skip: the run would pass while checking nothing."""
    entries = read_manifest(model_dir)["golden"]

    def read(name: str) -> str:
        path = model_dir / name
        if not is_verified(path, entries[name]):
            pytest.fail(f"the golden output {name} is missing or differs from the manifest; set "
                        f"{MIRROR_VARIABLE} to a folder holding it (such as the model mirror) so "
                        "`llama2np fetch` can put it in place.")
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
    return make_model(checkpoint)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory, model_dir) -> Path:
    """The demo site, built once per test session by `llama2np build` (sources from the cache
    in .cache/site-sources, fetched with npm and pip on the first run)."""
    from llama2np.tools.site.build import build_site

    return build_site(tmp_path_factory.mktemp("site") / "dist", log=lambda *_: None)
