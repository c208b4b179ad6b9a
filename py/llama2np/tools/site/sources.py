"""The pinned third-party files of the site: the Pyodide runtime, NumPy built for it, and a
Brotli decoder for hosts that do not compress.

Each comes through its ordinary client (`npm pack`, `pip download`), is checked against the
hash pinned in build/site.toml before anything reads it, and stays in a cache folder, so a
second build needs neither the network nor the clients.
"""

import base64
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llama2np.runtime.errors import Llama2npError
from llama2np.runtime.files import sha256_of
from llama2np.tools.paths import DEFAULT_CACHE, PINS_FILE


@dataclass
class RuntimeFiles:
    """Where the verified sources are: Pyodide's files, its lock, the NumPy wheel, the decoder."""

    pyodide_dir: Path  # holds the files listed in pins["pyodide"]["files"] and pyodide-lock.json
    numpy_wheel: Path
    brotli_dir: Path  # holds the files of pins["brotli"]["files"], by their base names
    pins: dict


def load_pins(path: Path = PINS_FILE) -> dict:
    with path.open("rb") as file:
        return tomllib.load(file)


def npm_integrity(path: Path) -> str:
    """The Subresource-Integrity string npm records for a package tarball."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def run_client(command: list[str], cwd: Path, what: str, advice: str) -> None:
    """Run npm or pip; any failure becomes one sentence saying what to do."""
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise Llama2npError(f"could not get {what}: `{command[0]}` is not installed; {advice}") from None
    except subprocess.CalledProcessError as error:
        last = (error.stderr or error.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise Llama2npError(f"could not get {what} ({last[0].strip()}); {advice}") from None


def get_runtime(cache: Path = DEFAULT_CACHE, numpy_wheel: Path | None = None,
                log: Callable[[str], None] = print) -> RuntimeFiles:
    """Verified Pyodide files and NumPy wheel, from the cache or fetched into it."""
    pins = load_pins()
    cache.mkdir(parents=True, exist_ok=True)
    # One build at a time fetches into the cache: two at once (two terminals, or the tests on
    # two cores) would each see the other's half-written download.
    with open(cache / ".lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        pyodide_dir = get_npm_package(pins["pyodide"], ["pyodide-lock.json"], cache, log)
        lock = json.loads((pyodide_dir / "pyodide-lock.json").read_text(encoding="utf-8"))
        wheel = get_numpy(pins["numpy"], lock, cache, numpy_wheel, log)
        brotli_dir = get_npm_package(pins["brotli"], [], cache, log)
    return RuntimeFiles(pyodide_dir, wheel, brotli_dir, pins)


def get_npm_package(pin: dict, extra: list[str], cache: Path, log: Callable[[str], None]) -> Path:
    """The files `pin["files"]` and `extra` of an npm package, by their base names, in a cache
    folder of that package and version."""
    name = f"{pin['package']}@{pin['version']}"
    folder = cache / f"{pin['package']}-{pin['version']}"
    wanted = [*pin["files"], *extra]
    if all((folder / Path(f).name).is_file() for f in wanted) and (folder / ".verified").is_file():
        log(f"  {name}: cached")
        return folder
    tarball = cache / f"{pin['package']}-{pin['version']}.tgz"
    if not tarball.is_file():
        log(f"  {name}: npm pack {name}")
        run_client(["npm", "pack", "--silent", name], cache, name,
                   "connect to the npm registry once (later builds use the cache) and retry.")
    if npm_integrity(tarball) != pin["integrity"]:
        tarball.unlink()
        raise Llama2npError(f"{tarball.name} does not match the integrity pinned in build/site.toml "
                            "(a corrupt or tampered download); it was removed, run the build again.")
    extract_members(tarball, {f"package/{f}": folder / Path(f).name for f in wanted})
    (folder / ".verified").write_text(pin["integrity"])
    return folder


def extract_members(tarball: Path, members: dict[str, Path]) -> None:
    """Copy the named members out of a tarball (by name only: no paths from the archive)."""
    next(iter(members.values())).parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        for member_name, target in members.items():
            try:
                member = archive.getmember(member_name)
            except KeyError:
                raise Llama2npError(f"{tarball.name} has no {member_name}; is the pin right?") from None
            source = archive.extractfile(member)
            if source is None:
                raise Llama2npError(f"{member_name} in {tarball.name} is not a regular file.")
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out)


def get_numpy(pin: dict, lock: dict, cache: Path, given: Path | None, log: Callable[[str], None]) -> Path:
    locked = lock["packages"]["numpy"]
    if locked["file_name"] != pin["file"] or locked["sha256"] != pin["sha256"]:
        raise Llama2npError("build/site.toml's NumPy pin disagrees with Pyodide's lock file; "
                            "update the pin to the lock's numpy entry.")
    target = cache / pin["file"]
    if given is not None:
        check_numpy(given, pin)
        shutil.copyfile(given, target)
    if target.is_file() and sha256_of(target) == pin["sha256"]:
        log(f"  NumPy {locked['version']} for Pyodide: {'given' if given else 'cached'}")
        return target
    carrier = cache / pin["carrier_file"]
    if not carrier.is_file():
        log(f"  NumPy {locked['version']} for Pyodide: pip download {pin['carrier']} (the "
            "package that carries Pyodide's NumPy wheel; both sha256-pinned)")
        run_client([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--pre",
                    pin["carrier"], "-d", str(cache)], cache, f"the NumPy wheel ({pin['carrier']})",
                   "connect to the Python package index once, or pass --numpy-wheel with "
                   f"{pin['file']}, and retry.")
    if sha256_of(carrier) != pin["carrier_sha256"]:
        carrier.unlink()
        raise Llama2npError(f"{carrier.name} does not match its sha256 in build/site.toml; it was "
                            "removed, run the build again.")
    with zipfile.ZipFile(carrier) as archive, archive.open(pin["carrier_member"]) as source:
        with target.open("wb") as out:
            shutil.copyfileobj(source, out)
    check_numpy(target, pin)
    return target


def check_numpy(path: Path, pin: dict) -> None:
    if not path.is_file():
        raise Llama2npError(f"NumPy wheel {path} does not exist.")
    if sha256_of(path) != pin["sha256"]:
        raise Llama2npError(f"{path} is not {pin['file']} (its sha256 differs from Pyodide's lock "
                            "file); use the wheel built for Pyodide 0.27.7.")
