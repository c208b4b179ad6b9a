"""What the page's Python imports, found by running it: the site ships only that.

`trace.mjs` starts the site's own Pyodide in Node, installs its NumPy and llama2np wheels and
calls what the worker calls on the site's model. The modules it imported are the standard
library and NumPy the page needs; everything else is weight a visitor would download for nothing
(nearly all of the 9 MB standard library, most of NumPy). The build runs it twice: once on the
full files to learn the list, once on the trimmed files to prove that they still run. Each
run's result is kept in a cache folder under a hash of everything it ran (the script, the
runtime's files, the model), so a build of unchanged inputs runs no Node at all.
"""

import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from llama2np.runtime.errors import Llama2npError
from llama2np.tools.outputs import write_atomic

SCRIPT = Path(__file__).with_name("trace.mjs")
TIMEOUT_SECONDS = 300
NODE_MAJOR = 18  # the oldest Node.js that Pyodide supports
OUTPUT_LIMIT = 16 << 20  # of each output stream; a trace prints some 20 KB
REQUIRED_MODULES = {"numpy", "encodings", "_pyodide"}  # a trace without them did not run the page
MEMORY_SIGNS = ("could not allocate memory", "out of memory", "cannot allocate memory",
                "allocation failed")
STDLIB_PREFIX = "/lib/python312.zip/"
SITE_PACKAGES = "/lib/python3.12/site-packages/"


@dataclass(frozen=True)
class Trace:
    modules: dict[str, str]  # module name -> its file as Python saw it

    def stdlib_members(self) -> set[str]:
        """Members of python_stdlib.zip that were imported."""
        return {f.removeprefix(STDLIB_PREFIX) for f in self.modules.values()
                if f.startswith(STDLIB_PREFIX)}

    def stdlib_modules(self) -> list[str]:
        """Names of the imported modules that live in python_stdlib.zip."""
        return sorted(name for name, f in self.modules.items() if f.startswith(STDLIB_PREFIX))

    def missing(self) -> str | None:
        """The first of what any run of the page imports that this trace lacks (a Node that
        printed a list without running the page, say), or None: a site cut to a trace that
        lacks one would not start."""
        missing = REQUIRED_MODULES - self.modules.keys()
        return min(missing) if missing else None

    def package_members(self, package: str) -> set[str]:
        """Files of `package` (as wheel members, `numpy/...`) that were imported."""
        prefix = SITE_PACKAGES + package + "/"
        return {f.removeprefix(SITE_PACKAGES) for f in self.modules.values()
                if f.startswith(prefix)}


def trace_runtime(runtime_folder: Path, checkpoint: Path, tokenizer: Path,
                  cache: Path | None = None) -> Trace:
    """Run the page's workload on the runtime in `runtime_folder` with this model (or take
    the result of the same run from `cache`)."""
    kept = cache / f"{inputs_hash(runtime_folder, checkpoint, tokenizer)}.json" if cache else None
    if kept and kept.is_file():
        try:
            trace = parse_trace(kept.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            trace = None
        if trace is not None and trace.missing() is None:
            return trace  # else a damaged entry: run it again
    trace, printed = run_trace(runtime_folder, checkpoint, tokenizer)
    if kept:
        cache.mkdir(parents=True, exist_ok=True)
        write_atomic(kept, printed.encode())
    return trace


def parse_trace(printed: str) -> Trace | None:
    """The trace in what trace.mjs printed, or None if it is not one (damaged, or not ours)."""
    try:
        modules = json.loads(printed)["modules"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(modules, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in modules.items()):
        return None
    return Trace(modules=modules)


def inputs_hash(runtime_folder: Path, checkpoint: Path, tokenizer: Path) -> str:
    """sha256 over the trace script and every file the run reads, with their names."""
    digest = hashlib.sha256(SCRIPT.read_bytes())
    files = sorted(p for p in runtime_folder.iterdir() if p.is_file())
    for path in [*files, checkpoint, tokenizer]:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def run_trace(runtime_folder: Path, checkpoint: Path, tokenizer: Path) -> tuple[Trace, str]:
    node = find_node()
    status, printed, errors = run_captured(
        [node, str(SCRIPT), str(runtime_folder), str(checkpoint), str(tokenizer)], TIMEOUT_SECONDS,
        "run the page's Python")
    if status != 0:
        raise Llama2npError(node_failure(status, errors))
    trace = parse_trace(printed)
    if trace is None:
        raise Llama2npError("the page's Python in Node printed no list of modules; "
                            "retry, or report it.")
    if missing := trace.missing():  # never cached: a retry runs it again
        raise Llama2npError(f"the page's Python in Node did not import {missing}; "
                            "retry, or report it.")
    return trace, printed


def find_node() -> str:
    """The `node` on PATH, refused with a sentence if missing or older than Pyodide needs."""
    node = shutil.which("node")
    if node is None:
        raise Llama2npError("building the site needs Node.js to run the page's Python once; "
                            "install it (for example `apt-get install nodejs`) and retry.")
    status, version, _ = run_captured([node, "--version"], 60, "say its version")
    version = version.strip()
    try:
        major = int(version.lstrip("v").split(".")[0]) if status == 0 else -1
    except ValueError:
        major = -1
    if major < 0:
        raise Llama2npError(f"{node} does not answer `--version` as Node.js does; put Node.js "
                            f"{NODE_MAJOR} or newer first on PATH and retry.")
    if major < NODE_MAJOR:
        raise Llama2npError(f"building the site needs Node.js {NODE_MAJOR} or newer, and `node` "
                            f"here is {version[:40]}; install a newer one and retry.")
    return node


def run_captured(command: list[str], timeout: float, what: str) -> tuple[int, str, str]:
    """Run `command` (which is to `what`): its exit status and its standard output and error
    as text. A run that takes over `timeout` seconds or prints more than OUTPUT_LIMIT bytes is
    stopped with a sentence. It runs in a process group of its own, ended with the call however
    the call ends, so nothing it started outlives it."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        outputs, problem = read_outputs(process, time.monotonic() + timeout)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group has ended already
        status = process.wait()
        process.stdout.close()
        process.stderr.close()
    if problem == "time":
        raise Llama2npError(f"`{Path(command[0]).name}` took over {timeout:g} s to {what}; retry.")
    if problem == "size":
        raise Llama2npError(f"`{Path(command[0]).name}` printed more than {OUTPUT_LIMIT >> 20} MB "
                            f"when asked to {what}; check that it is Node.js.")
    printed, errors = (bytes(o).decode("utf-8", "replace") for o in outputs)
    return status, printed, errors


def read_outputs(process: subprocess.Popen, deadline: float) -> tuple[list[bytearray], str | None]:
    """What `process` prints on its two outputs until both close and it ends (or it ends and a
    child it left holds them open), with "time" or "size" if it overran the deadline or the
    limit."""
    outputs = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    exited = None
    with selectors.DefaultSelector() as selector:
        for descriptor in outputs:
            os.set_blocking(descriptor, False)
            selector.register(descriptor, selectors.EVENT_READ)
        while selector.get_map() or process.poll() is None:
            for key, _ in selector.select(0.1) if selector.get_map() else []:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                elif len(outputs[key.fd]) + len(chunk) > OUTPUT_LIMIT:
                    return list(outputs.values()), "size"
                else:
                    outputs[key.fd] += chunk
            if not selector.get_map():
                time.sleep(0.05)  # both outputs closed: only the end of the run is awaited
            now = time.monotonic()
            if now > deadline:
                return list(outputs.values()), "time"
            if exited is None and process.poll() is not None:
                exited = now
            if exited is not None and now - exited > 1:
                break  # a child it left holds the outputs open: what came is what there is
    return list(outputs.values()), None


def node_failure(status: int, stderr: str) -> str:
    """One sentence for a failed run: a lack of memory or a signal named as such, else Node's
    error line (never a line of the minified code it may print around it)."""
    if status < 0:
        name = signal.Signals(-status).name if -status in signal.valid_signals() else -status
        return (f"Node was stopped by {name} while it ran the page's Python (SIGKILL is what "
                "the system sends when memory runs out); free some memory and retry.")
    if any(sign in (stderr or "").lower() for sign in MEMORY_SIGNS):
        return ("Node could not get the memory to run the page's Python: WebAssembly reserves "
                "about 12 GB of address space up front (not of RAM), so lift a `ulimit -v` "
                "limit or free some memory, and retry.")
    return f"the page's Python failed in Node ({error_line(stderr)}); retry, or report it."


def error_line(text: str) -> str:
    """The last line of Node's error output that names an error, else its last short line."""
    lines = [line.strip() for line in (text or "").splitlines()]
    short = [line for line in lines if 0 < len(line) <= 200 and not line.startswith("at ")]
    errors = [line for line in short if re.search(r"\b[A-Za-z]*Error\b|Assertion failed|FATAL ERROR", line)]
    return (errors or short or ["no output"])[-1]
