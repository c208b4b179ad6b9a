"""What to install when a command needs a package that `pip install llama2np` leaves out.

NumPy alone runs generate, encode, validate, export, fetch and serve. The rest of the tool chain
needs optional packages, grouped as extras in pyproject.toml; commands import them only when
they run, so the import fails there and `cli.main` turns it into one sentence from here.
"""

# The top-level module a command imports -> the extra (pyproject.toml) that installs it.
EXTRA_OF_MODULE = {
    "pyodide_lock": "site",
    "pyodide_build": "site",
    "pkginfo": "site",
    "brotli": "site",
    "wheel": "site",
    "sentencepiece": "tokenizer",
    "playwright": "bench",
}
# A command whose own extra brings all it may import: `bench --browser` builds a site first.
EXTRA_OF_COMMAND = {"bench": "bench"}


def missing_extra(command: str, error: ImportError) -> str:
    """One sentence saying which `pip install` gives `llama2np COMMAND` what it could not import."""
    module = error.name or ""
    extra = EXTRA_OF_MODULE.get(module.partition(".")[0])
    if extra is not None:
        extra = EXTRA_OF_COMMAND.get(command, extra)
        return (f"`llama2np {command}` needs the optional packages of llama2np[{extra}]; "
                f"run: pip install 'llama2np[{extra}]'")
    what = f"the Python module {module}" if module else f"a Python module ({error})"
    return (f"`llama2np {command}` could not import {what}; install it, or reinstall llama2np "
            "with all its extras: pip install 'llama2np[site,tokenizer,bench]'")
