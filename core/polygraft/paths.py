"""Checking a path a user gave before opening it: a missing file, a symbolic-link loop, a folder, or a special file
(a FIFO would block every reader forever, a device would be read without end) is named as what it is.

Example:
    >>> import os, tempfile
    >>> from polygraft.paths import file_problem
    >>> folder = tempfile.mkdtemp()
    >>> os.mkfifo(os.path.join(folder, "clip.wav"))
    >>> file_problem(os.path.join(folder, "clip.wav"))
    'not a regular file (a FIFO); give the path of a file'
    >>> file_problem(folder)
    'is a folder, not a file'
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a file, or ``None`` when it is a regular file (checked without opening it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a loop of symbolic links (each link points to another in a circle)"
        if exc.errno == errno.ENAMETOOLONG:
            return "is too long a path for this file system"
        if _is_link(path):
            return f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
        if exc.errno == errno.EACCES:
            return "cannot be read (permission denied)"
        return "does not exist"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"not a regular file ({kind}); give the path of a file"


def _is_link(path: str | Path) -> bool:
    try:
        return os.path.islink(path)
    except OSError:
        return False


def exists(path: str | Path) -> bool:
    """``Path(path).exists()`` that answers ``False`` for names the file system cannot even look up (too long)."""
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError):
        return False


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (on this machine): staging folders and locks of a killed process are
    stale.

    Example:
        >>> process_alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, under another user
        return True
    return True
