"""The product's own source as a zip inside the site, so the page's "source code" link works on
any static host, offline, and always matches the code that runs there.

It holds the `llama2np` package's Python (the runtime the page runs and the tool chain that
built the site), the page (index.html, web/), the site's pins and the model's manifest, and in
a checkout also pyproject.toml and README.md: paths as in the checkout, dated 1980-01-01 and in
a fixed order, so the same source gives the same bytes and the site's content hashes hold.
"""

import zipfile
from pathlib import Path

from llama2np.tools.site.runtime_wheel import PACKAGE_DIR, write_zip

ARCHIVE_NAME = "llama2np-source.zip"  # in the site's web-<hash>/ folder
PACKAGE_SUFFIXES = (".py", ".mjs")
PROJECT_FILES = ("pyproject.toml", "README.md", "build/site.toml", "stories260K/manifest.json",
                 "docs/embed.md")


def source_files(page_dir: Path, project_root: Path) -> dict[str, Path]:
    """Name in the archive -> file, for every file the archive holds."""
    files = {
        f"py/llama2np/{path.relative_to(PACKAGE_DIR).as_posix()}": path
        for path in PACKAGE_DIR.rglob("*")
        if path.suffix in PACKAGE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts
        and path.relative_to(PACKAGE_DIR).parts[0] != "data"  # the installed copy of the page
    }
    files |= {name: page_dir / name for name in ("index.html", "embed.html", "llama2np.js")}
    files |= {f"web/{path.relative_to(page_dir / 'web').as_posix()}": path
              for path in (page_dir / "web").rglob("*")
              if path.is_file() and not path.name.startswith(".")}
    files |= {name: project_root / name for name in PROJECT_FILES if (project_root / name).is_file()}
    return dict(sorted(files.items()))


def write_source_archive(target: Path, page_dir: Path, project_root: Path) -> Path:
    """Write the archive at `target` (reproducibly) and return it."""
    members = [(zipfile.ZipInfo(name), path.read_bytes())
               for name, path in source_files(page_dir, project_root).items()]
    write_zip(target, members)
    return target
