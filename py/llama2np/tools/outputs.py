"""Writing what a command makes without ever losing a person's file.

Every output is checked before any work (its folder exists, it is not a folder or a special
file, it is not one of the command's inputs by any name, and it exists only if `--force` says
it may be replaced), then written to a uniquely named temporary file in the same folder and
renamed into place: a reader sees the old file or the whole new one, never a half-written one,
and a failure or Ctrl+C leaves nothing behind but what was there before.
"""

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from llama2np.runtime.errors import Llama2npError, UsageError


def same_file(a: Path, b: Path) -> bool:
    """Whether two names reach one file (links, `..`, hard links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet), or is a loop of links
        try:
            return Path(os.path.abspath(a)).resolve() == Path(os.path.abspath(b)).resolve()
        except (OSError, RuntimeError):  # a loop of links reaches no file, so not the other
            return os.path.abspath(a) == os.path.abspath(b)


def check_output(target: Path, inputs: Iterable[Path] = (), force: bool = False,
                 what: str = "output") -> None:
    """Refuse `target` as an output unless writing it can lose nothing (see the module)."""
    target = Path(target)
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"the folder of {what} {target} does not exist; create it first or "
                         "choose another path.")
    for source in inputs:
        if same_file(target, Path(source)):
            raise UsageError(f"{what} {target} is also an input of this command ({source}); "
                             "choose another output.")
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as error:  # a name too long for the file system, a folder not searchable
        raise UsageError(f"{what} {shown(target)} cannot be written ({error.strerror}); choose "
                         "another path.") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{what} {target} is a folder; name a file to write.")
    if stat.S_ISLNK(mode) and not link_to_file_or_nothing(target):
        raise UsageError(f"{what} {target} is a link to something that is not a regular file; "
                         "choose another path.")
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UsageError(f"{what} {target} is not a regular file; choose another path.")
    if not force:
        raise UsageError(f"{what} {target} exists; pass --force to replace it, or choose another path.")


def link_to_file_or_nothing(link: Path) -> bool:
    """Whether a link names a regular file, or nothing at all (then it is replaced, as a file
    would be); a link to a device, a pipe or /proc's descriptors is never written over."""
    try:
        return stat.S_ISREG(link.stat().st_mode)
    except FileNotFoundError:
        return True
    except (OSError, RuntimeError):  # a loop of links
        return True


def shown(path: Path) -> str:
    """A path as a sentence repeats it: cut short when it is very long."""
    text = str(path)
    return text if len(text) <= 120 else text[:120] + "..."


# A file name's bytes on the file systems people use; a temporary name adds a dot, a random part
# and a suffix (18 bytes or so) to the output's name, which is cut to leave room for them.
NAME_MAX = 255
TEMPORARY_EXTRA = 24


def fitting(name: str) -> str:
    """`name`, cut (at a whole character) so that a temporary name built on it stays legal."""
    data = name.encode("utf-8", "surrogateescape")
    if len(data) <= NAME_MAX - TEMPORARY_EXTRA:
        return name
    return data[: NAME_MAX - TEMPORARY_EXTRA].decode("utf-8", "ignore")


@contextmanager
def atomic_output(target: Path, replace: bool = False) -> Iterator[Path]:
    """A new, uniquely named file beside `target` to write; put in place as `target` when the
    block ends normally, removed when it raises (Ctrl+C and SIGTERM included). Only with
    `replace` (--force) does it take the place of a file there; without it, a file that
    appeared at `target` while the command ran (another command's output, say) is kept and the
    command refused. A link at `target` is replaced itself; the file it points to is left alone."""
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{fitting(target.name)}.", suffix=".partial",
                                    dir=target.parent)
    except OSError as error:
        raise Llama2npError(f"cannot write in {target.parent}: {error.strerror}.") from None
    os.close(fd)
    temporary = Path(name)
    try:
        os.umask(umask := os.umask(0o077))  # mkstemp's 0600 would hide the output from others:
        os.chmod(temporary, 0o666 & ~umask)  # give it the permissions open() would have
        yield temporary
        if replace:
            os.replace(temporary, target)
        else:
            put_in_place(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and (error.filename in (None, name)
                                           or error.filename2 == str(target)):
            raise OSError(error.errno, error.strerror, str(target)) from None  # the user's name
        raise


def put_in_place(temporary: Path, target: Path) -> None:
    """Rename `temporary` to `target` only if nothing is there: a hard link fails rather than
    replace (where the file system has none, an exclusively created placeholder stands in)."""
    try:
        os.link(temporary, target, follow_symlinks=False)
        temporary.unlink()
        return
    except FileExistsError:
        raise appeared(target) from None
    except OSError:  # no hard links here (FAT, some network file systems)
        pass
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise appeared(target) from None
    os.replace(temporary, target)


def appeared(target: Path) -> UsageError:
    return UsageError(f"{shown(target)} appeared while this command ran, and is kept; pass "
                      "--force to replace it, or choose another path.")


@contextmanager
def scratch_file(beside: Path) -> Iterator[Path]:
    """A new, uniquely named hidden file in the folder of `beside`, for a command's own use
    while it runs; removed when the block ends, however it ends."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{fitting(Path(beside).name)}.", suffix=".scratch",
                                    dir=Path(beside).parent)
    except OSError as error:
        raise Llama2npError(f"cannot write in {Path(beside).parent}: {error.strerror}.") from None
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def write_atomic(target: Path, data: bytes, replace: bool = True) -> None:
    """`data` as the whole content of `target`, all or nothing; a file there is replaced unless
    `replace` is False (see `atomic_output`)."""
    with atomic_output(target, replace) as temporary:
        write_temporary(temporary, data, target)


def write_temporary(temporary: Path, data: bytes, target: Path) -> None:
    """`data` into `atomic_output`'s temporary file; a full disk is a sentence naming `target`."""
    try:
        temporary.write_bytes(data)
    except OSError as error:
        raise Llama2npError(f"cannot write {target}: {error.strerror}.") from None
