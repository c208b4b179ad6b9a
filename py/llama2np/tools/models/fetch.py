"""A model's files put in place, verified against its manifest (`llama2np fetch`).

Files come from the folder named by LLAMA2NP_MODEL_MIRROR when it is set, else from the upstream
addresses in the manifest. A file already present with the right sha256 is kept as it is.

The manifest is data from elsewhere, so it is checked before anything is fetched: every name must
be a plain file name (nothing that reaches outside the model folder), every address http(s), every
size and hash well formed. A download stops as soon as it passes the manifest's size, and is
written to a uniquely named temporary file in the model folder that becomes the file only once its
sha256 matches; nothing else in the folder is touched.

The manifest's optional "golden" object lists reference outputs (the tests compare the runtime's
stories with them). They have no download address: `fetch` copies them from the mirror when it
holds them and otherwise leaves them out, since using the model does not need them.
"""

import hashlib
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from llama2np.runtime.errors import Llama2npError
from llama2np.runtime.files import open_regular, read_file, sha256_of
from llama2np.tools.outputs import atomic_output
from llama2np.tools.paths import DEFAULT_MODEL_DIR, place_packaged_manifest

MIRROR_VARIABLE = "LLAMA2NP_MODEL_MIRROR"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest lists a handful of files
MAX_FILE_BYTES = 1 << 36  # 64 GiB: beyond any checkpoint this tool can run
MAX_NAME_LENGTH = 200  # below every file system's 255-byte limit, with room for a temporary name
TIMEOUT_SECONDS = 30  # for connecting and for every read: a silent server does not hang fetch
BLOCK = 1 << 20
SHA256 = re.compile(r"[0-9a-f]{64}")


def read_manifest(model_dir: Path) -> dict:
    """The manifest of `model_dir`, checked for shape (see `check_manifest`)."""
    path = Path(model_dir) / MANIFEST
    if not path.exists():
        raise Llama2npError(f"{path} does not exist; name a folder that holds a model manifest.")
    data = read_file(path, "manifest", max_bytes=MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as error:  # ValueError: bad JSON, UTF-8 or a huge number
        raise Llama2npError(f"{path} is not valid JSON ({str(error)[:100]}); fix or replace "
                            "it.") from None
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: object, path: Path) -> None:
    """Refuse a manifest that is not an object with a "files" object of well-formed entries (and
    an optional "golden" object of entries without an address), naming the entry at fault."""

    def refuse(problem: str) -> Llama2npError:
        return Llama2npError(f"{path} is not a usable model manifest: {problem}; fix or replace it.")

    if not isinstance(manifest, dict):
        raise refuse("it is not a JSON object")
    if not isinstance(manifest.get("files"), dict):
        raise refuse('it has no "files" object')
    golden = manifest.get("golden", {})
    if not isinstance(golden, dict):
        raise refuse('"golden" is not an object')
    for section, entries in (("files", manifest["files"]), ("golden", golden)):
        for name, entry in entries.items():
            where = f'{section} entry {json.dumps(name)[:60]}'
            problem = name_problem(name) or entry_problem(entry, needs_url=section == "files")
            if problem:
                raise refuse(f"{where} {problem}")
    if set(manifest["files"]) & set(golden):
        raise refuse('a name is listed in both "files" and "golden"')


def name_problem(name: str) -> str | None:
    """Why `name` is not a plain file name inside the model folder, or None."""
    if not name or len(name) > MAX_NAME_LENGTH:
        return f"is not a file name of 1 to {MAX_NAME_LENGTH} characters"
    if name.startswith(".") or any(c in name for c in "/\\\0") or not name.isprintable():
        return "is not a plain file name (no folders, no leading dot, no control characters)"
    if name == MANIFEST:
        return "would replace the manifest itself"
    return None


def entry_problem(entry: object, needs_url: bool) -> str | None:
    """Why `entry` is not {"url": http(s) address, "size": int, "sha256": 64 hex}, or None."""
    if not isinstance(entry, dict):
        return "is not an object"
    size, sha256 = entry.get("size"), entry.get("sha256")
    if type(size) is not int or not 0 <= size <= MAX_FILE_BYTES:
        return f'has no "size" between 0 and {MAX_FILE_BYTES:,} bytes'
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        return 'has no "sha256" of 64 lowercase hexadecimal digits'
    if needs_url:
        url = entry.get("url")
        # An address is printed as it is fetched: no spaces or control characters in it.
        plain = isinstance(url, str) and url.isprintable() and not any(c.isspace() for c in url)
        try:
            parts = urllib.parse.urlsplit(url) if plain else None
            host = parts and parts.hostname
        except ValueError:  # such as an unclosed [IPv6] host
            parts = host = None
        if not parts or parts.scheme not in ("http", "https") or not host:
            return 'has no "url" starting with http:// or https://, without spaces'
    return None


def fetch(model_dir: Path = DEFAULT_MODEL_DIR, quiet: bool = False) -> Path:
    """Make every file of the manifest present and verified (and, from a mirror, the golden
    outputs it holds); return the folder."""
    model_dir = Path(model_dir)
    place_packaged_manifest(model_dir)
    manifest = read_manifest(model_dir)
    mirror = os.environ.get(MIRROR_VARIABLE)
    if mirror and not Path(mirror).is_dir():
        raise Llama2npError(f"{MIRROR_VARIABLE}={mirror} is not a folder; point it at a folder "
                            "holding the model files, or unset it to download them.")
    wanted = [(name, entry, False) for name, entry in manifest["files"].items()]
    if mirror:
        wanted += [(name, entry, True) for name, entry in manifest.get("golden", {}).items()]
    for name, entry, optional in wanted:
        target = model_dir / name
        if is_verified(target, entry):
            continue
        if optional and not (Path(mirror) / name).exists():
            continue  # a reference output the mirror does not hold: not needed to run the model
        with atomic_output(target, replace=True) as temporary:  # fetch's own, unverified copy
            if mirror:
                source = f"{MIRROR_VARIABLE}={mirror}"
                actual = _copy_from_mirror(Path(mirror) / name, temporary, entry["size"])
            else:
                source = entry["url"]
                actual = _download(entry["url"], temporary, entry["size"], quiet)
            if actual != entry["sha256"]:
                raise Llama2npError(
                    f"{name} from {source} has sha256 {actual}, not the manifest's "
                    f"{entry['sha256']}; the source is corrupt or a different file, so it was "
                    "not used.")
        if not quiet:
            print(f"fetched {name} ({entry['size']:,} bytes, sha256 verified)", file=sys.stderr)
    return model_dir


def is_verified(target: Path, entry: dict) -> bool:
    """Whether `target` is already the manifest's file; a folder or special file in its place
    is refused rather than replaced, since fetch did not put it there."""
    if not os.path.lexists(target):
        return False
    if target.is_dir() or (target.exists() and not target.is_file()):
        raise Llama2npError(f"{target} is in the way of a model file and is not a regular file; "
                            "move it away and fetch again.")
    return target.is_file() and target.stat().st_size == entry["size"] and \
        sha256_of(target) == entry["sha256"]


def _copy(read: Callable[[int], bytes], out: Path, size: int, source: str) -> str:
    """Copy blocks from `read(n)` into `out`, refusing more than `size` bytes; the sha256."""
    digest, written = hashlib.sha256(), 0
    with out.open("wb") as file:
        while block := read(BLOCK):
            written += len(block)
            if written > size:
                raise Llama2npError(f"{source} holds more than the manifest's {size:,} bytes; "
                                    "it is a different file, so it was not used.")
            digest.update(block)
            try:
                file.write(block)
            except OSError as error:
                raise Llama2npError(f"cannot write in {out.parent}: {error.strerror}.") from None
    return digest.hexdigest()


def _copy_from_mirror(source: Path, out: Path, size: int) -> str:
    if not source.exists():
        raise Llama2npError(
            f"{source.name} is not in the mirror folder {source.parent} ({MIRROR_VARIABLE}); "
            "point the variable at a folder holding the model files, or unset it to download."
        )
    fd = open_regular(source, "mirror")
    try:
        with os.fdopen(fd, "rb") as file:
            return _copy(file.read, out, size, str(source))
    except OSError as error:
        raise Llama2npError(f"cannot copy {source} to {out.parent}: {error.strerror}.") from None


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) addresses only (urllib would also follow one to ftp)."""

    def redirect_request(self, req: object, fp: object, code: int, msg: str, headers: object,
                         newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.URLError(f"redirected to {newurl[:100]}, which is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url: str, out: Path, size: int, quiet: bool) -> str:
    if not quiet:
        print(f"downloading {url}", file=sys.stderr)
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    try:
        with opener.open(url, timeout=TIMEOUT_SECONDS) as response:
            return _copy(response.read, out, size, url)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise Llama2npError(
            f"could not download {url} ({str(reason)[:200]}); check the network connection, or "
            f"set {MIRROR_VARIABLE} to a folder that holds the model files."
        ) from None
