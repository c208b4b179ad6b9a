"""The `llama2np` runtime as a wheel for the browser: the package's `runtime/` folder, compiled.

The command-line and tool-chain modules around it stay out: the page never runs them and they
import packages Pyodide does not have. The host Python is 3.12 like Pyodide's, so the build
compiles the modules for it (bytecode.py), sparing it the compile at start.
"""

import os
import zipfile
from pathlib import Path

from wheel.wheelfile import WheelFile

import llama2np
from llama2np.tools.site.bytecode import compiled_members

PACKAGE_DIR = Path(llama2np.__file__).parent


def runtime_modules() -> list[str]:
    """The wheel's modules, as paths below the package without ".py": the package's own
    `__init__` (its version, and names it imports only when asked) and all of `runtime/`."""
    found = sorted(p.relative_to(PACKAGE_DIR).with_suffix("").as_posix()
                   for p in (PACKAGE_DIR / "runtime").rglob("*.py"))
    return ["__init__", *found]
# A fixed timestamp makes the wheel's bytes, and so the site's content hashes, reproducible.
REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can hold


def build_runtime_wheel(out_dir: Path) -> Path:
    """Write llama2np-<version>-cp312-none-any.whl with the runtime modules compiled for the
    browser's Python; returns its path."""
    version = llama2np.__version__
    name = f"llama2np-{version}-cp312-none-any.whl"
    wheel_path = out_dir / name
    os.environ.setdefault("SOURCE_DATE_EPOCH", REPRODUCIBLE_EPOCH)
    with WheelFile(wheel_path, "w") as wheel:
        for module in runtime_modules():
            wheel.write(str(PACKAGE_DIR / f"{module}.py"), f"llama2np/{module}.py")
        info = f"llama2np-{version}.dist-info"
        wheel.writestr(f"{info}/METADATA", metadata(version))
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: llama2np build\n"
                       "Root-Is-Purelib: true\nTag: cp312-none-any\n")
    members = [m for m in read_members(wheel_path) if not m[0].filename.endswith("/RECORD")]
    write_zip(wheel_path, compiled_members(members), zipfile.ZIP_STORED)
    return wheel_path


def metadata(version: str) -> str:
    return (f"Metadata-Version: 2.1\nName: llama2np\nVersion: {version}\n"
            "Summary: llama2.c's Llama-2 inference in NumPy (runtime only)\n"
            "Requires-Python: >=3.12\nRequires-Dist: numpy\n")


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
