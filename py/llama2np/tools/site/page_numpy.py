"""The site's NumPy and Python library: the pinned files, repacked to install faster and weigh less.

Pyodide installs a wheel by unpacking every file and compiling every WebAssembly library in it,
and Python compiles each .py module it imports. Both cost a visitor time on every visit, so the
site's NumPy is the pinned wheel (checked by hash first) less what `import numpy` and llama2np
never load: numpy.random, numpy.fft, f2py, type stubs, C headers and the test extensions (five
of the six libraries Pyodide would compile for them). Its modules are byte-compiled by
`pyodide py-compile` (the host's Python is the browser's 3.12). Both zips are stored without
compression: the server sends them brotli-compressed, which packs them tighter than a zip's
per-file deflate, and the browser then has nothing to inflate. Entries are dated 1980-01-01 so
that the same sources give the same bytes.
"""

import zipfile
from pathlib import Path

from llama2np.errors import Llama2npError
from llama2np.tools.site.runtime_wheel import fixed_timestamps, py_compile, read_members, write_zip

# What the page's NumPy leaves out. `import numpy` loads numpy.linalg (matrixlib needs it) and
# _multiarray_tests (its docstrings are added at import), so both stay.
LEFT_OUT_FOLDERS = ("numpy/random/", "numpy/fft/", "numpy/f2py/", "numpy/_pyinstaller/",
                    "numpy/typing/", "numpy/_core/include/", "numpy/doc/")
LEFT_OUT_SUFFIXES = (".pyi", ".pxd")
LEFT_OUT_LIBRARIES = ("_operand_flag_tests", "_rational_tests", "_struct_ufunc_tests",
                      "_umath_tests", "_simd")


def kept_in_page_numpy(name: str) -> bool:
    """Whether the wheel member `name` is in the page's NumPy."""
    if name.startswith(LEFT_OUT_FOLDERS) or name.endswith(LEFT_OUT_SUFFIXES):
        return False
    if name.endswith(".dist-info/RECORD"):
        return False  # lists the files left out; Pyodide does not need it
    return name.rsplit("/", 1)[-1].split(".", 1)[0] not in LEFT_OUT_LIBRARIES


def build_page_numpy(pinned_wheel: Path, out_dir: Path) -> Path:
    """Write the page's NumPy wheel into `out_dir` (same file name as the pinned one)."""
    target = out_dir / pinned_wheel.name
    with zipfile.ZipFile(pinned_wheel) as source:
        members = [(info, source.read(info)) for info in source.infolist()
                   if kept_in_page_numpy(info.filename)]
    if not any(info.filename == "numpy/__init__.py" for info, _ in members):
        raise Llama2npError(f"{pinned_wheel.name} holds no numpy/__init__.py; is it NumPy's wheel?")
    write_zip(target, members, zipfile.ZIP_STORED)
    return fixed_timestamps(py_compile(target, "numpy-*.whl"), zipfile.ZIP_STORED)


def repack_stored(source: Path, target: Path) -> Path:
    """`source` zip as an uncompressed zip at `target`, with fixed dates and the same members."""
    write_zip(target, read_members(source), zipfile.ZIP_STORED)
    return target
