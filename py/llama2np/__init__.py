"""llama2np: llama2.c's Llama-2 inference in NumPy, token for token the same as run.c.

The runtime (this package, less the command line: `cli`, `console`, `extras`, `commands/` and
the tool chain in `tools/`) imports only the standard library and NumPy, so the browser's
Pyodide runs the very modules the command line runs (tools/site/runtime_wheel.py lists them).

The names below are imported on first use (PEP 562), not with the package: `llama2np.cli` is
inside this package, and importing NumPy here would put a tenth of a second of start-up before
the command line's Ctrl+C and error handling can run.
"""

__all__ = ["Checkpoint", "Config", "Story", "Tokenizer", "make_model", "read_checkpoint"]
__version__ = "0.1.0"

# Public name -> the module that defines it.
_HOMES = {
    "Checkpoint": "llama2np.runtime.checkpoint",
    "Config": "llama2np.runtime.checkpoint",
    "read_checkpoint": "llama2np.runtime.checkpoint",
    "Story": "llama2np.runtime.generate",
    "make_model": "llama2np.runtime.model",
    "Tokenizer": "llama2np.runtime.tokenizer",
}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'llama2np' has no attribute {name!r}")
    # __import__ rather than importlib, which this module then need not import at start-up.
    value = getattr(__import__(_HOMES[name], fromlist=[name]), name)
    globals()[name] = value  # later lookups no longer come here
    return value

