"""A model's files put in place, verified against its manifest (`llama2np fetch`).

Files come from the folder named by LLAMA2NP_MODEL_MIRROR when it is set, else from the upstream
addresses in the manifest. A file already present with the right sha256 is kept as it is.
"""

import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from llama2np.errors import Llama2npError
from llama2np.tools.paths import DEFAULT_MODEL_DIR

MIRROR_VARIABLE = "LLAMA2NP_MODEL_MIRROR"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> dict:
    path = model_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise Llama2npError(f"{path} does not exist; name a folder that holds a model manifest.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Llama2npError(f"{path} is not valid JSON ({error}).") from None


def fetch(model_dir: Path = DEFAULT_MODEL_DIR, quiet: bool = False) -> Path:
    """Make every file of the manifest present and verified; return the folder."""
    manifest = read_manifest(model_dir)
    mirror = os.environ.get(MIRROR_VARIABLE)
    for name, entry in manifest["files"].items():
        target = model_dir / name
        if target.is_file() and sha256_of(target) == entry["sha256"]:
            continue
        partial = target.with_name(target.name + ".part")
        if mirror:
            _copy_from_mirror(Path(mirror) / name, partial)
        else:
            _download(entry["url"], partial, quiet)
        actual = sha256_of(partial)
        if actual != entry["sha256"]:
            partial.unlink()
            source = f"{MIRROR_VARIABLE}={mirror}" if mirror else entry["url"]
            raise Llama2npError(
                f"{name} from {source} has sha256 {actual}, not the manifest's {entry['sha256']}; "
                "the source is corrupt or a different file, so it was not used."
            )
        partial.replace(target)
        if not quiet:
            print(f"fetched {name} ({entry['size']:,} bytes, sha256 verified)", file=sys.stderr)
    return model_dir


def _copy_from_mirror(source: Path, partial: Path) -> None:
    if not source.is_file():
        raise Llama2npError(
            f"{source.name} is not in the mirror folder {source.parent} ({MIRROR_VARIABLE}); "
            "point the variable at a folder holding the model files, or unset it to download."
        )
    shutil.copyfile(source, partial)


def _download(url: str, partial: Path, quiet: bool) -> None:
    if not quiet:
        print(f"downloading {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        partial.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise Llama2npError(
            f"could not download {url} ({reason}); check the network connection, or set "
            f"{MIRROR_VARIABLE} to a folder that holds the model files."
        ) from None
