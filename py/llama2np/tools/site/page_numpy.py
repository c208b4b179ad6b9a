"""The site's NumPy and Python library: the pinned files, cut down to what the page imports.

Pyodide installs a wheel by unpacking every file and compiling every WebAssembly library in it,
and a visitor downloads all of it first. So the site's NumPy is the pinned wheel (checked by
hash first) byte-compiled by `pyodide py-compile` (the host's Python is the browser's 3.12), and
then cut to the files that running the page imported (trace.py); Python's library zip likewise.
Both zips are stored without compression: the site's .br and .gz siblings pack them tighter
than a zip's per-file deflate, and the browser then has nothing to inflate twice. Entries are
dated 1980-01-01 so that the same sources give the same bytes.
"""

import zipfile
from pathlib import Path

from llama2np.runtime.errors import Llama2npError
from llama2np.tools.site.bytecode import compiled_members
from llama2np.tools.site.runtime_wheel import read_members, write_zip

# numpy.linalg's compiled kernels (much of NumPy's download) are imported by `import numpy`
# but never called by the page; the site's NumPy has this module in their place, which says so
# if anything ever calls one.
LINALG_KERNELS = "numpy/linalg/_umath_linalg.cpython-312-wasm32-emscripten.so"
LINALG_STANDIN = ("numpy/linalg/_umath_linalg.py", b'''"""Stands in for numpy.linalg's kernels in the page."""
def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError("numpy.linalg's kernels are not part of this page's NumPy; "
                      "llama2np's runtime does not use them.")
''')


def build_page_numpy(pinned_wheel: Path, out_dir: Path) -> Path:
    """Write the pinned NumPy, compiled for the browser, into `out_dir` (same file name), with
    numpy.linalg's kernels replaced by a stand-in."""
    target = out_dir / pinned_wheel.name
    members = read_members(pinned_wheel)
    names = {info.filename for info, _ in members}
    if "numpy/__init__.py" not in names or LINALG_KERNELS not in names:
        raise Llama2npError(f"{pinned_wheel.name} is not the NumPy wheel the site pins.")
    members = [m for m in members if m[0].filename != LINALG_KERNELS]
    name, source = LINALG_STANDIN
    members.append((zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), source))
    write_zip(target, compiled_members(members), zipfile.ZIP_STORED)
    return target


def keep_only(archive: Path, wanted: set[str], keep_metadata: bool = False) -> None:
    """Rewrite the zip `archive` (stored) with only the members named in `wanted`, and with
    `keep_metadata` its .dist-info files but RECORD (which lists what is left out)."""
    def kept(name: str) -> bool:
        if keep_metadata and ".dist-info/" in name:
            return not name.endswith("/RECORD")
        return name in wanted

    members = [(info, data) for info, data in read_members(archive) if kept(info.filename)]
    missing = wanted - {info.filename for info, _ in members}
    if missing:
        raise Llama2npError(f"{archive.name} lacks {sorted(missing)[0]}, which the page imported.")
    write_zip(archive, members, zipfile.ZIP_STORED)


def build_page_stdlib(source: Path, target: Path, wanted: set[str]) -> Path:
    """Python's library zip at `target`: the members in `wanted`, compiled for the browser.
    `wanted` names .pyc files (what the page imported) of the zip's .py sources."""
    sources = {name.removesuffix("c") for name in wanted}
    write_zip(target, compiled_members([(info, data) for info, data in read_members(source)
                                        if info.filename in sources]), zipfile.ZIP_STORED)
    return target


def repack_stored(source: Path, target: Path) -> Path:
    """`source` zip as an uncompressed zip at `target`, with fixed dates and the same members."""
    write_zip(target, read_members(source), zipfile.ZIP_STORED)
    return target
