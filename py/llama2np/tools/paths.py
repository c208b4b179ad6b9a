"""Where the tool chain finds the project's own files and puts what it makes by default."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]  # py/llama2np/tools/paths.py -> the checkout
DEFAULT_MODEL_DIR = PROJECT_ROOT / "stories260K"  # the demo model's manifest; files fetched beside it
DEFAULT_SITE = PROJECT_ROOT / "dist"  # what `llama2np build` writes and `llama2np serve` serves
DEFAULT_CACHE = PROJECT_ROOT / ".cache" / "site-sources"  # the site's pinned downloads
PINS_FILE = PROJECT_ROOT / "build" / "site.toml"  # versions and hashes of those downloads
