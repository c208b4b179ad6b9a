"""Reading a file a person named: only regular files, read once, never more than their size.

A FIFO would block a reader forever and a device such as /dev/zero never ends, so the file is
opened without blocking, checked with fstat on the very descriptor that is read (no window for a
swap), and read up to the size that fstat reported.
"""

import hashlib
import os
import stat
from pathlib import Path

from llama2np.runtime.errors import Llama2npError


def open_regular(path: str | Path, what: str, error: type[Llama2npError] = Llama2npError) -> int:
    """A read-only descriptor of `path` once it is known to be a regular file; the caller closes
    it. Anything else (missing, a folder, a FIFO, a device, unreadable) is `error` with a sentence."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} file {path} does not exist.") from None
    except IsADirectoryError:
        raise error(f"{what} file {path} is a directory, not a file.") from None
    except OSError as failure:
        raise error(f"cannot read {what} file {path}: {failure.strerror}.") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a pipe, device or socket)"
        raise error(f"{what} file {path} is {kind}; name a regular file.")
    os.set_blocking(fd, True)
    return fd


def read_file(path: str | Path, what: str, error: type[Llama2npError] = Llama2npError,
              max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file `path`; a file larger than `max_bytes` is refused unread."""
    fd = open_regular(path, what, error)
    try:
        size = os.fstat(fd).st_size
        if max_bytes is not None and size > max_bytes:
            raise error(f"{what} file {path} is {size:,} bytes, more than the {max_bytes:,} "
                        f"a {what} file can be; check that it is the right file.")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(size)  # no more than fstat reported, even if the file grows
    except OSError as failure:
        raise error(f"cannot read {what} file {path}: {failure.strerror}.") from None
    finally:
        os.close(fd)
    return data


def read_start(path: str | Path, what: str, count: int,
               error: type[Llama2npError] = Llama2npError) -> bytes:
    """The first `count` bytes of the regular file `path` (fewer if it is shorter)."""
    fd = open_regular(path, what, error)
    try:
        return os.pread(fd, count, 0)
    except OSError as failure:
        raise error(f"cannot read {what} file {path}: {failure.strerror}.") from None
    finally:
        os.close(fd)


def require_regular_file(path: str | Path, what: str, error: type[Llama2npError] = Llama2npError) -> int:
    """Check that `path` is a regular file a library may open by name; returns its size."""
    fd = open_regular(path, what, error)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def sha256_of(path: str | Path, what: str = "model") -> str:
    """The sha256 of a regular file's bytes (hex), read a megabyte at a time."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path, what), "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
