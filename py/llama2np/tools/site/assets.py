"""Turning a folder of site files into immutable, content-addressed, precompressed assets.

Every folder but the page itself is renamed `<name>-<hash>`, its hash taken over its contents,
so a server can let browsers cache it forever and a rebuild that changes a byte changes the
address. `index.html`, the one file served `no-cache`, is rewritten to point at the new names.
Precompressed `.br` and `.gz` siblings let a server send fewer bytes without compressing on
every request, and let the page itself fetch the `.gz` and inflate it where the host sends
files as they are (most static hosts): the lists the worker reads (files.json, a model's
manifest.json) name each file's siblings and their sizes.
"""

import gzip
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import brotli

from llama2np.tools.outputs import write_atomic

HASH_LENGTH = 10
SIBLINGS = (".br", ".gz")
# Worth compressing: text and WebAssembly. Wheels and zips are compressed already, but the
# check below keeps a sibling only where it saves enough.
COMPRESSIBLE = {".html", ".js", ".mjs", ".css", ".json", ".wasm", ".bin", ".svg", ".zip", ".whl"}
MIN_SAVING = 0.05
# Brotli's best setting (quality 11, a 16 MB window) packs the megabyte files tighter than
# quality 9 but takes tens of seconds on Pyodide's WebAssembly, so its output is kept in a cache keyed
# by the input's sha256: rebuilding unchanged files costs nothing.
BROTLI_WINDOW_BITS = 24
BEST_QUALITY, FAST_QUALITY = 11, 5
# A file larger than this is first sampled: SAMPLES slices of SAMPLE_BYTES spread over it,
# packed at the fast setting (milliseconds). Model weights hardly compress (float32 mantissas are
# noise: a few percent saved, whatever the setting), and the best setting takes seconds a
# megabyte on them: minutes for stories15M, for a sibling a few percent smaller.
SAMPLED_ABOVE = 4 << 20
SAMPLES, SAMPLE_BYTES = 8, 256 << 10
# Sampled savings below NOT_WORTH leave the file as it is: even the best setting would not reach
# MIN_SAVING (it beats the fast one by about two points on such data). Below HARDLY, the fast
# setting packs the file: on data this close to noise the best one gains little for its minutes.
# The WebAssembly and the stored zips pack well and keep the best setting.
NOT_WORTH, HARDLY = MIN_SAVING / 2, 0.25


def folder_hash(folder: Path) -> str:
    """A short sha256 over every file's relative name and content (compressed siblings, made
    from those files, add nothing)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in SIBLINGS):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:HASH_LENGTH]


def hash_folder_name(folder: Path) -> Path:
    """Rename `folder` to `folder-<hash>` and return the new path."""
    hashed = folder.with_name(f"{folder.name}-{folder_hash(folder)}")
    folder.rename(hashed)
    return hashed


def rewrite_references(page: Path, replacements: dict[str, str]) -> None:
    """Replace each quoted reference in the page, which must occur exactly once."""
    html = page.read_text(encoding="utf-8")
    for old, new in replacements.items():
        quoted = f'"{old}"'
        count = html.count(quoted)
        if count != 1:
            raise ValueError(f"{page.name} should reference {quoted} exactly once, found {count}")
        html = html.replace(quoted, f'"{new}"')
    page.write_text(html, encoding="utf-8")


def precompress(site: Path, cache: Path | None = None) -> None:
    """Write X.br and X.gz beside every compressible X where they are at least 5% smaller;
    brotli results are kept in `cache` (a folder) when one is given. Large files are sampled
    first (see `brotli_quality`), so only what compression pays for is compressed.

    Files are compressed on every core at once, the largest first: brotli and zlib let go of
    Python's lock while they work, and a first build spends most of its time here."""
    files = [p for p in site.rglob("*") if p.is_file() and p.suffix in COMPRESSIBLE
             and not any(p.with_name(p.name + s).exists() for s in SIBLINGS)]
    files.sort(key=lambda p: (-p.stat().st_size, p))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as workers:
        list(workers.map(lambda path: precompress_file(path, cache), files))  # raises their errors


def precompress_file(path: Path, cache: Path | None) -> None:
    data = path.read_bytes()
    quality = brotli_quality(data)
    if quality is None:
        return
    for suffix, packed in ((".br", brotli_packed(data, quality, cache)),
                           (".gz", gzip.compress(data, compresslevel=9, mtime=0))):
        if len(packed) <= len(data) * (1 - MIN_SAVING):
            path.with_name(path.name + suffix).write_bytes(packed)


def sampled_saving(data: bytes) -> float:
    """The share of bytes the fast brotli setting saves on slices spread over `data`."""
    step = (len(data) - SAMPLE_BYTES) // (SAMPLES - 1)
    slices = [data[index * step : index * step + SAMPLE_BYTES] for index in range(SAMPLES)]
    packed = sum(len(brotli.compress(part, quality=FAST_QUALITY)) for part in slices)
    return 1 - packed / (SAMPLES * SAMPLE_BYTES)


def brotli_quality(data: bytes) -> int | None:
    """The brotli setting `data` is worth, or None when no compression pays for itself; every
    file up to SAMPLED_ABOVE gets the best, as it always has."""
    if len(data) <= SAMPLED_ABOVE:
        return BEST_QUALITY
    saving = sampled_saving(data)
    if saving < NOT_WORTH:
        return None
    return FAST_QUALITY if saving < HARDLY else BEST_QUALITY


def brotli_packed(data: bytes, quality: int, cache: Path | None) -> bytes:
    # The best setting's entries keep their old names, so existing caches stay valid.
    name = hashlib.sha256(data).hexdigest() + ("" if quality == BEST_QUALITY else f".q{quality}")
    kept = cache / f"{name}.br" if cache else None
    if kept and kept.is_file():
        return kept.read_bytes()
    packed = brotli.compress(data, quality=quality, lgwin=BROTLI_WINDOW_BITS)
    if kept:
        cache.mkdir(parents=True, exist_ok=True)
        write_atomic(kept, packed)  # a build stopped halfway leaves no truncated entry behind
    return packed


def file_entry(path: Path, root: Path) -> dict:
    """A file as the worker's lists name it: its size, sha256 and the sizes of its compressed
    siblings ("br", "gz"), where it has them."""
    data = path.read_bytes()
    entry = {"name": path.relative_to(root).as_posix(), "bytes": len(data),
             "sha256": hashlib.sha256(data).hexdigest()}
    for suffix in SIBLINGS:
        sibling = path.with_name(path.name + suffix)
        if sibling.is_file():
            entry[suffix[1:]] = sibling.stat().st_size
    return entry


def write_file_list(folder: Path, names: list[str], extra: dict | None = None) -> None:
    """files.json: the files the worker downloads from this folder, and `extra` fields."""
    entries = [file_entry(folder / name, folder) for name in names]
    listing = {"files": entries, **(extra or {})}
    (folder / "files.json").write_text(json.dumps(listing, indent=1) + "\n")


def wire_bytes(site: Path) -> tuple[int, int]:
    """(bytes of the site as files, bytes a browser accepting brotli downloads for them)."""
    plain = wire = 0
    for path in site.rglob("*"):
        if not path.is_file() or path.suffix in (".br", ".gz"):
            continue
        size = path.stat().st_size
        br = path.with_name(path.name + ".br")
        plain += size
        wire += br.stat().st_size if br.is_file() else size
    return plain, wire
