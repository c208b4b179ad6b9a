"""Where the tool chain finds the project's own files and puts what it makes by default.

From a checkout (the README's scripts, an editable install) everything stays in the checkout:
the page (index.html, web/), the site pins (build/site.toml), the model manifest with the model
fetched beside it (stories260K/), the built site (dist/) and the downloads (.cache/).

An installed llama2np (from a wheel or an sdist) has no checkout around it. It carries the same
page, pins and manifest as package data in `llama2np/data/`, laid out as in the checkout (see
pyproject.toml), and never writes into its own installation: the site goes to ./dist and the
model and the site's downloads to a per-user cache folder.
"""

import os
from pathlib import Path

from llama2np.tools.outputs import write_atomic

CHECKOUT = Path(__file__).resolve().parents[3]  # py/llama2np/tools/paths.py -> the checkout
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"  # the installed copy of its files


def is_checkout(folder: Path) -> bool:
    """Whether `folder` is the project's source tree (rather than, say, site-packages' parent)."""
    return (folder / "pyproject.toml").is_file() and (folder / "py" / "llama2np").is_dir()


def user_cache() -> Path:
    """$XDG_CACHE_HOME/llama2np, else ~/.cache/llama2np (the XDG base directory rules: a
    relative $XDG_CACHE_HOME is ignored)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        try:
            base = Path.home() / ".cache"
        except RuntimeError:  # no home directory known: keep the cache where the user is
            base = Path.cwd() / ".cache"
    return Path(base) / "llama2np"


def place_packaged_manifest(model_dir: Path) -> None:
    """Before an installed tool fetches its packaged model into the user cache: `fetch` reads
    the manifest beside the files it writes, so the folder gets a copy of the packaged one
    (rewritten only when it differs, all or nothing). In a checkout, or for any other folder,
    nothing happens."""
    packaged = PACKAGE_DATA / model_dir.name / "manifest.json"
    if is_checkout(CHECKOUT) or model_dir != DEFAULT_MODEL_DIR or not packaged.is_file():
        return
    manifest = packaged.read_bytes()
    copy = model_dir / "manifest.json"
    # is_file() refuses a FIFO or a device without opening it; the size check bounds the read.
    if copy.is_file() and copy.stat().st_size == len(manifest) and copy.read_bytes() == manifest:
        return
    model_dir.mkdir(parents=True, exist_ok=True)  # an unusable cache folder is named by the CLI
    write_atomic(copy, manifest)


if is_checkout(CHECKOUT):
    PROJECT_ROOT = CHECKOUT  # holds index.html, web/, build/ and stories260K/
    DEFAULT_MODEL_DIR = PROJECT_ROOT / "stories260K"  # the manifest; files fetched beside it
    DEFAULT_SITE = PROJECT_ROOT / "dist"  # what `llama2np build` writes and `serve` serves
    DEFAULT_CACHE = PROJECT_ROOT / ".cache" / "site-sources"  # the site's pinned downloads
else:
    PROJECT_ROOT = PACKAGE_DATA  # the same files, in the same layout, inside the installation
    DEFAULT_MODEL_DIR = user_cache() / "stories260K"  # its manifest placed by fetch()
    DEFAULT_SITE = Path("dist")  # in the current folder, as `--out dist` would be
    DEFAULT_CACHE = user_cache() / "site-sources"
PINS_FILE = PROJECT_ROOT / "build" / "site.toml"  # versions and hashes of those downloads
