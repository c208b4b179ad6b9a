"""A snapshot of Python's memory right after it started, made at build time with Node.

Starting CPython in WebAssembly takes the page about 1.5 s; restoring a snapshot of the started
interpreter takes about 0.3 s. Pyodide can snapshot only an interpreter with no packages loaded,
so NumPy and llama2np are still installed after the restore. `make_snapshot.mjs` does the work.
"""

import shutil
import subprocess
from pathlib import Path

from llama2np.errors import Llama2npError

SCRIPT = Path(__file__).with_name("make_snapshot.mjs")
SNAPSHOT_NAME = "python-snapshot.bin"
TIMEOUT_SECONDS = 300


def make_snapshot(runtime_folder: Path) -> Path:
    """Write `SNAPSHOT_NAME` into `runtime_folder` (which holds the site's Pyodide files)."""
    node = shutil.which("node")
    if node is None:
        raise Llama2npError("building the site needs Node.js to prepare Python's start; install "
                            "it (for example `apt-get install nodejs`) and retry.")
    target = runtime_folder / SNAPSHOT_NAME
    try:
        subprocess.run([node, str(SCRIPT), str(runtime_folder), str(target)], check=True,
                       capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.CalledProcessError as error:
        last = (error.stderr or "").strip().splitlines()[-1:] or ["no output"]
        # Node may end with a line of minified Pyodide source: keep the sentence readable.
        reason = last[0] if len(last[0]) <= 200 else last[0][:200] + "..."
        raise Llama2npError(f"could not snapshot Python's start in Node ({reason}); "
                            "check that `node --version` is 18 or newer.") from None
    except subprocess.TimeoutExpired:
        raise Llama2npError(f"Node took over {TIMEOUT_SECONDS} s to start Python; retry.") from None
    return target
