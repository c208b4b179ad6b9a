"""The site's folder (`llama2np build --out`), replaced without losing a person's file.

A build is staged in a uniquely named folder beside --out and swapped in only when complete. An
existing --out is replaced only when it is empty or a site this command wrote and still holds
nothing else: each build lists the files it wrote in its marker, so a file a person added to
the site since (notes, a model kept there, a .git folder) stops the rebuild with a sentence
instead of being deleted with the old site. An input inside --out stops it too.
"""

import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from llama2np.runtime.errors import Llama2npError, UsageError

MARKER = ".llama2np-site"  # marks a folder this command wrote, and lists what it wrote there
MARKER_HEADING = "built by llama2np build; its files:"
SHOWN = 3  # of the strangers named in a refusal


def entries(folder: Path) -> list[str]:
    """Every folder and file below `folder`, as sorted relative paths."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def mark_as_built(site: Path) -> None:
    """Write the marker: every folder and file below `site`, one relative path a line."""
    (site / MARKER).write_text("\n".join([MARKER_HEADING, *entries(site), MARKER]) + "\n",
                               encoding="utf-8")


def check_output_folder(out: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse an --out that a build could not replace without losing something: a missing parent
    folder, a link, a file, a non-empty folder this command did not write, one that holds files
    it did not write, or one that holds an input of the build."""
    if out.name in ("", ".."):  # no name to stage beside and rename: "." or "/" or ".."
        raise UsageError(f"--out {out} is not a folder name; name the site's folder, such as dist.")
    if not out.parent.is_dir():
        raise UsageError(f"the folder of --out {out} does not exist; create it first or choose "
                         "another --out.")
    try:
        mode = out.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):  # a rebuild would replace the link, not the folder it names
        raise UsageError(f"--out {out} is a symbolic link; name the site folder itself.")
    if not stat.S_ISDIR(mode):
        raise UsageError(f"--out {out} exists and is not a folder; choose another --out.")
    folder = out.resolve()
    for path in inputs:
        if Path(os.path.abspath(path)).resolve().is_relative_to(folder):
            raise UsageError(f"{path} is inside --out {out}, which the build replaces; move it "
                             "out of the site first or choose another --out.")
    try:
        strangers = files_not_written(out)
    except OSError as error:
        raise Llama2npError(f"cannot read --out {out}: {error.strerror}.") from None
    if strangers is None:
        raise Llama2npError(f"{out} exists and was not written by `llama2np build`; choose "
                            "another --out or empty it first.")
    if strangers:
        named = ", ".join(strangers[:SHOWN]) + (", ..." if len(strangers) > SHOWN else "")
        raise Llama2npError(f"{out} holds files that `llama2np build` did not write ({named}); "
                            "move them out of the site first or choose another --out.")


def files_not_written(out: Path) -> list[str] | None:
    """What is in `out` beyond what the last build listed: [] for an empty folder or a site as
    built, None for a folder without a marker (not a site of this command's)."""
    present = entries(out)
    if not present:
        return []
    marker = out / MARKER
    if not marker.is_file() or marker.is_symlink():
        return None
    lines = marker.read_text(encoding="utf-8", errors="replace").splitlines()
    if lines[:1] != [MARKER_HEADING]:  # an earlier release's marker, which listed nothing:
        return None  # what else the folder holds cannot be told, so it is not replaced
    written = set(lines[1:])
    return [entry for entry in present if entry not in written]


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """An empty folder to build the site in, inside a uniquely named folder beside `out` (same
    file system, so the site can be renamed into place), removed with whatever is left in it
    when the build ends, fails or is interrupted. Unique, so nothing of the user's (such as a
    `dist.partial/`) is ever taken for it."""
    try:
        holder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as error:
        raise Llama2npError(f"cannot write in {out.parent}: {error.strerror}.") from None
    try:
        site = holder / "site"
        site.mkdir()  # not the holder itself, which mkdtemp makes readable by its owner only
        yield site
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def swap_in(site: Path, out: Path) -> None:
    """Make the finished `site` the folder `out`: a site there already (checked to be one this
    command wrote, or empty) is first moved aside into the staging holder, which is removed.
    Once aside, it is checked again: a file added to it while the build ran puts it back, and
    the new site is dropped instead."""
    old = site.with_name("old")
    if out.exists():
        out.rename(old)
        strangers = files_not_written(old)
        if strangers is None or strangers:
            old.rename(out)
            named = ", ".join((strangers or ["its marker"])[:SHOWN])
            raise Llama2npError(f"{out} changed while the site was built ({named}); it is left "
                                "as it is: move what was added out of it and build again.")
    try:
        site.rename(out)
    except OSError:
        if old.exists():
            old.rename(out)
        raise
