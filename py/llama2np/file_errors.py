"""One sentence for a file the system refused: no permission, no space, a file where a folder
belongs. That is the machine's state, not a fault of the command, so it is named with what to
do rather than called an internal error."""

import errno
import os
from pathlib import Path

FILE_ADVICE = {  # errors of the file system that a person fixes, and how
    errno.ENOENT: "check the path",
    errno.EACCES: "check its permissions, or choose another place",
    errno.EPERM: "check its permissions, or choose another place",
    errno.EROFS: "the file system is read-only: choose another place",
    errno.ENOSPC: "free some space and run again",
    errno.EDQUOT: "free some space and run again",
    errno.EEXIST: "a file is in the way of a folder there: move it, or fix the path",
    errno.ENOTDIR: "a part of that path is a file where a folder belongs: fix the path",
    errno.EISDIR: "that is a folder where a file belongs: fix the path",
    errno.ENAMETOOLONG: "use a shorter name",
    errno.ELOOP: "it is a loop of links: fix the path",
    errno.EMFILE: "too many files are open: raise `ulimit -n`, or close other programs",
    errno.ENFILE: "too many files are open on this machine: close other programs",
    errno.EFBIG: "the file system takes no file this large: choose another place",
    errno.EIO: "the disk reported an error: check it, or choose another place",
}


def file_trouble(error: OSError) -> str:
    """The sentence for `error`, one of FILE_ADVICE's, naming its file and, when the per-user
    cache put the file there, the setting that chose that cache."""
    reason = (error.strerror or "failed").lower()
    advice = FILE_ADVICE[error.errno]
    if not error.filename:
        return f"a file operation failed: {reason}; {advice}."
    name = os.fsdecode(error.filename)
    return f"cannot use {name}{cache_origin(name)}: {reason}; {advice}."


def cache_origin(name: str) -> str:
    """Where an installed tool's cache (see tools/paths.py) holds `name` and XDG_CACHE_HOME
    chose its place, a note that says so; else nothing."""
    from llama2np.tools import paths

    setting = os.environ.get("XDG_CACHE_HOME", "")
    if paths.is_checkout(paths.CHECKOUT) or not os.path.isabs(setting):
        return ""
    if not Path(os.path.abspath(name)).is_relative_to(paths.user_cache()):
        return ""
    return f" (llama2np's cache, placed by XDG_CACHE_HOME={setting})"
