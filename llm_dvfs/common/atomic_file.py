"""Results files replaced in one rename, so a crash or power cut leaves the old file or the new one, never half.

The temporary file is made by `tempfile.mkstemp` in the target's own directory (same filesystem, so the rename is
atomic; unique and created with O_EXCL, so a symlink planted at a guessable `PATH.tmp` is never followed). The
data is fsynced before the rename and the directory after it, so the new name itself survives a power cut. The
rename replaces only a regular file (or nothing): a directory, device node or FIFO given as the path is refused.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from llm_dvfs.common.errors import UsageError


def _mode_for(path: Path) -> int:
    """The permissions the new file gets: the old file's, else rw-r--r-- (mkstemp's own 0600 would hide results
    from the other users and containers that read them)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0o644
    if stat.S_ISLNK(st.st_mode):
        return 0o644  # the rename replaces the link itself, never what it points to
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} exists and is not a regular file; refusing to replace it")
    return stat.S_IMODE(st.st_mode)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data`: unique temporary file, fsync, rename, fsync of the directory."""
    path = Path(path)
    mode = _mode_for(path)
    directory = path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """`atomic_write_bytes` for text."""
    atomic_write_bytes(path, text.encode(encoding))


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
