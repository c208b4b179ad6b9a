"""The demo as a self-contained static site (`llama2np build`):

    dist/index.html                      the page; with the other files at the root, the only
                                         files not cached for good
    dist/embed.html, dist/llama2np.js    the story writer in another page: an example, and the
                                         module such pages import (docs/embed.md)
    dist/service-worker.js               keeps the site for offline visits (web/service-worker.js)
    dist/web-<hash>/                     the page's scripts and styles (from web/)
    dist/pyodide-<hash>/                 Pyodide, a snapshot of its started interpreter, the
                                         page's NumPy wheel, the llama2np runtime wheel, the
                                         site's pyodide-lock.json and files.json
    dist/model-<hash>/                   checkpoint, tokenizer, manifest.json (sizes, sha256);
                                         one folder for each model, the default first
    dist/models-<hash>/models.json       the site's models (name, parameters, bytes, manifest),
                                         the default first, for the page's model picker

Nothing is fetched from anywhere at run time: the worker loads all of it from the site.
The build happens in a uniquely named scratch folder beside the output, which replaces the output
only when it is complete: a site this command wrote before (it holds the marker file) is moved
aside and removed once the new one is in place; any other non-empty folder, a file or a link at
the output is refused before any work.
"""

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from pyodide_lock import PackageSpec, PyodideLockSpec

import llama2np
from llama2np.file_errors import FILE_ADVICE
from llama2np.runtime.errors import CheckpointError, Llama2npError, TokenizerError, UsageError
from llama2np.runtime.files import require_regular_file, sha256_of
from llama2np.tools.models.fetch import fetch
from llama2np.tools.models.validation import Report, require_valid
from llama2np.tools.paths import DEFAULT_CACHE, DEFAULT_MODEL_DIR, PROJECT_ROOT
from llama2np.tools.site.assets import (
    file_entry,
    hash_folder_name,
    precompress,
    rewrite_references,
    write_file_list,
)
from llama2np.tools.site.output_folder import (
    check_output_folder,
    mark_as_built,
    staging_folder,
    swap_in,
)
from llama2np.tools.site.page_numpy import build_page_numpy, build_page_stdlib, keep_only
from llama2np.tools.site.runtime_wheel import build_runtime_wheel
from llama2np.tools.site.source_archive import ARCHIVE_NAME, write_source_archive
from llama2np.tools.site.sources import RuntimeFiles, get_runtime
from llama2np.tools.site.trace import trace_runtime

SERVICE_WORKER = "service-worker.js"  # in web/ of the source; at the root of the site
# The files at the site's root, whose names stay the same from build to build: the page, the
# example of embedding it and the module other pages import (the rest is content-hashed).
ROOT_FILES = ("index.html", "embed.html", "llama2np.js")
STDLIB = "python_stdlib.zip"
PROBE = "encoding-probe.bin"
# Pyodide's loader is an ES module named .mjs, a type that stock nginx and others do not know
# (they send it as application/octet-stream and the browser refuses to run it); as .js it runs.
SITE_NAMES = {"pyodide.mjs": "pyodide.js"}
SITE_MODEL_FILES = {"checkpoint": "model.bin", "tokenizer": "tokenizer.bin"}


def build_site(
    out: Path,
    checkpoint: Path | None = None,
    tokenizer: Path | None = None,
    *,
    page_dir: Path = PROJECT_ROOT,
    cache: Path = DEFAULT_CACHE,
    numpy_wheel: Path | None = None,
    models: Sequence[tuple[Path, Path]] = (),
    log: Callable[[str], None] = print,
) -> Path:
    """Build the site into `out` from the page in `page_dir` (index.html and web/), with the
    model `checkpoint` and `tokenizer` (the demo's when neither is given and `models` is empty)
    followed by each (checkpoint, tokenizer) of `models`; the first is the page's default."""
    pairs = site_models(checkpoint, tokenizer, models)
    inputs = [path for pair in pairs for path in pair] + [page_dir, cache]
    check_output_folder(out, [*inputs, *([numpy_wheel] if numpy_wheel else [])])
    with staging_folder(out) as staging:  # made first: an unwritable folder fails before work
        reports = []
        for checkpoint, tokenizer in pairs:
            log(f"Validating {checkpoint.name} with {tokenizer.name}")
            reports.append(require_valid(checkpoint, tokenizer))
        log("Getting the pinned runtime")
        runtime = get_runtime(cache, numpy_wheel, log)
        log("Writing the site (the first build compresses for about a minute; later ones "
            "reuse the results)")
        compressed = cache.with_name("compressed")
        try:
            copy_page(page_dir, staging)
            pyodide_dir = write_runtime(runtime, staging / "pyodide", pairs[0], compressed)
            model_dirs = [hash_folder_name(write_model(checkpoint, tokenizer, report, staging / "model",
                                                         compressed))
                          for (checkpoint, tokenizer), report in zip(pairs, reports, strict=True)]
            models_dir = hash_folder_name(write_model_list(model_dirs, staging / "models"))
            web_dir = hash_folder_name(staging / "web")
            pyodide_dir = hash_folder_name(pyodide_dir)
            rewrite_page(staging, web_dir.name, pyodide_dir.name, model_dirs[0].name,
                         models_dir.name)
            precompress(staging, compressed)
            mark_as_built(staging)
            swap_in(staging, out)
        except OSError as error:
            written = error.filename2 or error.filename  # a copy's error names its source first
            named = f" ({written})" if written else ""
            advice = FILE_ADVICE.get(error.errno, "check the folder and retry")
            raise Llama2npError(f"cannot write the site beside {out}{named}: "
                                f"{(error.strerror or 'failed').lower()}; {advice}.") from None
    return out


def site_models(checkpoint: Path | None, tokenizer: Path | None,
                models: Sequence[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """The site's models in order, the default first: --checkpoint/--tokenizer (or the demo's
    when they and `models` are absent), then each --model. The same pair twice is refused:
    the picker would offer one model under two names."""
    pairs = [] if (checkpoint is None and tokenizer is None and models) else \
        [model_files(checkpoint, tokenizer)]
    for pair in models:
        if len(pair) != 2:
            raise UsageError("--model takes two files: a checkpoint and its tokenizer.")
        pairs.append(model_files(Path(pair[0]), Path(pair[1])))
    seen = set()
    for checkpoint, tokenizer in pairs:  # by content: a copy or a hard link is the same model
        key = (sha256_of(checkpoint, "checkpoint"), sha256_of(tokenizer, "tokenizer"))
        if key in seen:
            raise UsageError(f"the model {checkpoint} with {tokenizer} is named twice; name each "
                             "model once.")
        seen.add(key)
    return pairs


def model_files(checkpoint: Path | None, tokenizer: Path | None) -> tuple[Path, Path]:
    """The model to bundle: the demo's, fetched, or the two regular files the user named (a FIFO
    or a device is refused here, before anything is read or fetched)."""
    if checkpoint is None and tokenizer is None:
        folder = fetch(DEFAULT_MODEL_DIR, quiet=True)
        return folder / "stories260K.bin", folder / "tok512.bin"
    if checkpoint is None or tokenizer is None:
        raise UsageError("--checkpoint and --tokenizer go together: a model needs its tokenizer.")
    require_regular_file(checkpoint, "checkpoint", CheckpointError)
    require_regular_file(tokenizer, "tokenizer", TokenizerError)
    return checkpoint, tokenizer


def copy_page(page_dir: Path, site: Path) -> None:
    pages, web = [page_dir / name for name in ROOT_FILES], page_dir / "web"
    if not all(page.is_file() for page in pages) or not web.is_dir():
        raise Llama2npError(f"{page_dir} has no {', '.join(ROOT_FILES)} and web/ folder to build "
                            "the page from.")
    for page in pages:
        shutil.copyfile(page, site / page.name)
    # The service worker controls only the folder it is served from and below: the site's root.
    shutil.copytree(web, site / "web", ignore=shutil.ignore_patterns(".*", "*~", SERVICE_WORKER))
    if (web / SERVICE_WORKER).is_file():
        shutil.copyfile(web / SERVICE_WORKER, site / SERVICE_WORKER)
    write_source_archive(site / "web" / ARCHIVE_NAME, page_dir, PROJECT_ROOT)


def rewrite_page(site: Path, web: str, pyodide: str, model: str, models: str) -> None:
    """Point the files at the site's root at the content-hashed folders."""
    references = {
        "index.html": {
            "web/style.css": f"{web}/style.css",
            "web/app.js": f"{web}/app.js",
            f"web/{ARCHIVE_NAME}": f"{web}/{ARCHIVE_NAME}",
            "pyodide/": f"{pyodide}/",
            "model/manifest.json": f"{model}/manifest.json",
            "models/models.json": f"{models}/models.json",
        },
        "embed.html": {
            "web/embed.css": f"{web}/embed.css",
            "web/embed-example.js": f"{web}/embed-example.js",
            f"web/{ARCHIVE_NAME}": f"{web}/{ARCHIVE_NAME}",
        },
        "llama2np.js": {
            "./web/story-element.js": f"./{web}/story-element.js",
            "./web/story-writer.js": f"./{web}/story-writer.js",
            "pyodide/": f"{pyodide}/",
            "model/manifest.json": f"{model}/manifest.json",
        },
    }
    try:
        for name, replacements in references.items():
            rewrite_references(site / name, replacements)
    except ValueError as error:
        raise Llama2npError(f"cannot build the page: {error}.") from None


def write_runtime(runtime: RuntimeFiles, folder: Path, model: tuple[Path, Path],
                  compressed: Path) -> Path:
    """Pyodide's files, the page's NumPy and llama2np wheels and a lock file listing exactly
    those wheels, cut down to what running the page with `model` imports (trace.py), and
    files.json, the list the worker downloads (with each file's compressed siblings)."""
    folder.mkdir()
    for name in runtime.pins["pyodide"]["files"]:
        shutil.copyfile(runtime.pyodide_dir / name, folder / SITE_NAMES.get(name, name))
    numpy = build_page_numpy(runtime.numpy_wheel, folder)
    wheel = build_runtime_wheel(folder)
    write_lock(runtime.pyodide_dir / "pyodide-lock.json", folder / "pyodide-lock.json", numpy, wheel)
    traces = compressed.with_name("traces")  # beside the compression cache
    trace = trace_runtime(folder, *model, traces)
    keep_only(numpy, trace.package_members("numpy"), keep_metadata=True)
    stdlib = folder / STDLIB
    build_page_stdlib(runtime.pyodide_dir / STDLIB, stdlib, trace.stdlib_members())
    write_lock(runtime.pyodide_dir / "pyodide-lock.json", folder / "pyodide-lock.json", numpy, wheel)
    trace_runtime(folder, *model, traces)  # the cut-down files still run the page's Python
    names = [SITE_NAMES.get(name, name) for name in runtime.pins["pyodide"]["files"]]
    # The page asks for this small file first: a host that sends it compressed (a
    # Content-Encoding) will send every file so, and the page asks for the files themselves.
    (folder / PROBE).write_bytes(b"Sent compressed? Then the host compresses .bin files.\n" * 64)
    decoder = [Path(name).name for name in runtime.pins["brotli"]["files"]]
    for name in decoder:
        shutil.copyfile(runtime.brotli_dir / name, folder / name)
    precompress(folder, compressed)
    write_file_list(folder, [*names, "pyodide-lock.json", numpy.name, wheel.name],
                    {"preimport": trace.stdlib_modules(), "probe": file_entry(folder / PROBE, folder),
                     "brotli": [file_entry(folder / name, folder) for name in decoder[:2]]})
    return folder


def write_lock(source: Path, target: Path, numpy_wheel: Path, runtime_wheel: Path) -> None:
    """The site's pyodide-lock.json: Pyodide's own entry for NumPy (with the page's wheel's
    sha256) plus one for llama2np; Pyodide checks each sha256 before installing."""
    lock = PyodideLockSpec.from_json(source)
    numpy = lock.packages["numpy"]
    numpy.sha256 = sha256_of(numpy_wheel)
    lock.packages = {
        "numpy": numpy,
        "llama2np": PackageSpec(
            name="llama2np",
            version=llama2np.__version__,
            file_name=runtime_wheel.name,
            install_dir="site",
            sha256=sha256_of(runtime_wheel),
            package_type="package",
            imports=["llama2np"],
            depends=["numpy"],
        ),
    }
    lock.to_json(target, indent=1)


def write_model(checkpoint: Path, tokenizer: Path, report: Report, folder: Path,
                compressed: Path) -> Path:
    folder.mkdir()
    names = {}
    # Fixed names inside the site, whatever the files are called: a checkpoint and a tokenizer
    # of one base name, one called manifest.json, a hidden name or one ending in .br or .gz
    # would otherwise clash with each other or with the site's own files. The model keeps its
    # name in the manifest.
    for role, source in (("checkpoint", checkpoint), ("tokenizer", tokenizer)):
        shutil.copyfile(source, folder / SITE_MODEL_FILES[role])
    precompress(folder, compressed)
    for role in ("checkpoint", "tokenizer"):
        names[role] = file_entry(folder / SITE_MODEL_FILES[role], folder)
        names[role]["file"] = names[role].pop("name")
    manifest = {
        "name": checkpoint.stem,
        **names,
        "config": report.config,
        "parameters": report.parameters,
        "format": report.format,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


def write_model_list(model_dirs: list[Path], folder: Path) -> Path:
    """The site's list of models for the page's picker: what each option shows and where its
    manifest is, relative to the site's root; the first is the default. Two models of the same
    file name are told apart by their folder's hash."""
    folder.mkdir()
    entries = []
    for model_dir in model_dirs:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        entries.append({
            "name": manifest["name"],
            "parameters": manifest["parameters"],
            "bytes": manifest["checkpoint"]["bytes"] + manifest["tokenizer"]["bytes"],
            "manifest": f"{model_dir.name}/manifest.json",
        })
    names = [entry["name"] for entry in entries]
    for entry, model_dir in zip(entries, model_dirs, strict=True):
        if names.count(entry["name"]) > 1:
            entry["name"] = f"{entry['name']} ({model_dir.name.removeprefix('model-')[:8]})"
    (folder / "models.json").write_text(json.dumps({"models": entries}, indent=1) + "\n")
    return folder
