"""The `llama2np` runtime as a wheel for the browser: only what the worker imports, byte-compiled.

The command-line and tool-chain modules (`commands/`, `tools/`) stay out: the page never runs
them and they import packages Pyodide does not have. The host Python is 3.12 like Pyodide's,
so `pyodide py-compile` makes .pyc files the browser can use, sparing it the compile at start.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from wheel.wheelfile import WheelFile

import llama2np
from llama2np.errors import Llama2npError

PACKAGE_DIR = Path(llama2np.__file__).parent
# The runtime's modules, as paths below the package; tests check that they import nothing outside the standard library and
# NumPy, so that this list is all the browser needs.
RUNTIME_MODULES = (
    "__init__", "baseline", "benchmark", "checkpoint", "draft", "errors", "files", "generate",
    "model/__init__", "model/float32", "model/fused", "model/rope", "model/transformer",
    "own_files", "sampler", "session", "tokenizer",
)
# A fixed timestamp makes the wheel's bytes, and so the site's content hashes, reproducible.
REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can hold


def build_runtime_wheel(out_dir: Path) -> Path:
    """Write llama2np-<version>-py3-none-any.whl with the runtime modules, then py-compile it;
    returns the compiled wheel's path."""
    version = llama2np.__version__
    name = f"llama2np-{version}-py3-none-any.whl"
    wheel_path = out_dir / name
    os.environ.setdefault("SOURCE_DATE_EPOCH", REPRODUCIBLE_EPOCH)
    with WheelFile(wheel_path, "w") as wheel:
        for module in RUNTIME_MODULES:
            wheel.write(str(PACKAGE_DIR / f"{module}.py"), f"llama2np/{module}.py")
        info = f"llama2np-{version}.dist-info"
        wheel.writestr(f"{info}/METADATA", metadata(version))
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: llama2np build\n"
                       "Root-Is-Purelib: true\nTag: py3-none-any\n")
    return fixed_timestamps(py_compile(wheel_path))


def metadata(version: str) -> str:
    return (f"Metadata-Version: 2.1\nName: llama2np\nVersion: {version}\n"
            "Summary: llama2.c's Llama-2 inference in NumPy (runtime only)\n"
            "Requires-Python: >=3.12\nRequires-Dist: numpy\n")


def py_compile(wheel_path: Path, pattern: str = "llama2np-*.whl") -> Path:
    """Replace .py by .pyc with pyodide-build's `py-compile`, which may rename the wheel (a
    pure-Python one becomes cp312); returns the wheel matching `pattern` that it leaves."""
    pyodide = Path(sys.executable).with_name("pyodide")
    command = [str(pyodide), "py-compile", "--silent", str(wheel_path)]
    # Python stamps each .pyc with a time; this one makes the stamp, and the wheel, reproducible.
    env = {**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH}
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise Llama2npError(f"`pyodide py-compile` failed ({detail.strip().splitlines()[-1:]}); "
                            "run scripts/setup.sh to install the pinned pyodide-build.") from None
    wheels = list(wheel_path.parent.glob(pattern))
    compiled = [p for p in wheels if p != wheel_path] or wheels
    if len(compiled) != 1:
        raise Llama2npError(f"`pyodide py-compile` did not leave exactly one {pattern} wheel.")
    return compiled[0]


def fixed_timestamps(wheel_path: Path, compress_type: int = zipfile.ZIP_DEFLATED) -> Path:
    """Rewrite the zip with every entry dated 1980-01-01: `py-compile` stamps the time of the
    build, which would change the wheel's hash, and the site's folder name, on every build."""
    write_zip(wheel_path, read_members(wheel_path), compress_type)
    return wheel_path


def read_members(path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def write_zip(path: Path, members: list[tuple[zipfile.ZipInfo, bytes]],
              compress_type: int = zipfile.ZIP_DEFLATED) -> None:
    """`members` as a zip at `path`, each dated 1980-01-01 so that the bytes are reproducible."""
    with zipfile.ZipFile(path, "w") as target:
        for info, data in members:
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.external_attr = info.external_attr
            target.writestr(fixed, data, compress_type=compress_type,
                            compresslevel=9 if compress_type == zipfile.ZIP_DEFLATED else None)
