"""Python sources in a zip, compiled for the browser's Python before a visitor downloads them.

Compiling the standard library's modules at start costs the page most of Python's start
(docs/hosting.md); shipping them compiled costs nothing at start. The host's Python is 3.12 like the browser's, so
its bytecode is the browser's. Modules are compiled as `python -OO` would (no docstrings, no
asserts): the page reads no docstring, and they would be many of the bytes. Each .pyc is
sourceless (its header names no source time), so the same sources give the same bytes.
"""

import importlib.util
import marshal
import sys
import zipfile

from llama2np.runtime.errors import Llama2npError

OPTIMIZE = 2  # as `python -OO`
BROWSER_PYTHON = (3, 12)


def compiled_members(members: list[tuple[zipfile.ZipInfo, bytes]]) -> list[tuple[zipfile.ZipInfo, bytes]]:
    """`members` of a zip with every .py replaced by its .pyc (same folder, name + "c")."""
    if sys.version_info[:2] != BROWSER_PYTHON:
        raise Llama2npError("building the site needs Python 3.12, the browser's version, to "
                            "compile its modules; run scripts/setup.sh.")
    out = []
    for info, data in members:
        if info.filename.endswith(".py"):
            info = zipfile.ZipInfo(info.filename + "c", date_time=info.date_time)
            data = to_pyc(data, info.filename)
        out.append((info, data))
    return out


def to_pyc(source: bytes, name: str) -> bytes:
    """A sourceless .pyc: magic, flags 0, a zero time and size, then the code object."""
    try:
        code = compile(source, name.removesuffix("c"), "exec", optimize=OPTIMIZE,
                       dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        raise Llama2npError(f"cannot compile {name} for the page ({error}).") from None
    return importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code)
