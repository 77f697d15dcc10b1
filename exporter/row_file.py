"""A file that only ever holds whole rows, for recordings that must survive a full disk (issue 11).

A buffered file flushes whatever fits, so a disk that fills mid-flush leaves half a row behind and every later row
glued to it. Here rows are kept in memory until `flush()`, which appends them in one `os.write` (repeated only for
a short write); when that fails the file is cut back to its last whole row and the rows stay pending, so the next
flush retries them and a recovered disk continues the file as if nothing happened. While the disk stays full,
pending rows are capped at `max_pending` bytes: later rows are dropped and counted (never earlier ones, so what is
written stays in order).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_PENDING_BYTES = 16 * 1024 * 1024  # 8 GPUs at 100 ms: ~35 min of CSV rows, ~12 min of JSON lines


class RowFile:
    """Text-stream enough for `csv.writer` and `SamplesWriter` (write, flush, fileno, close, closed); `write` is
    called once per row (csv.writer writes each row in one call)."""

    def __init__(self, path: str | Path, max_pending: int = MAX_PENDING_BYTES) -> None:
        self.path = str(path)
        # cutting back needs a file, and a device node (as root, a disk) must never be written: refuse anything
        # else before opening it (a FIFO's open would wait for a reader) and again after (a swap in between)
        if os.path.exists(self.path) and not stat.S_ISREG(os.stat(self.path).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a recording must be a file)", self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            raise OSError(errno.EINVAL, "not a regular file (a recording must be a file)", self.path)
        os.ftruncate(self._fd, 0)
        self._whole = 0  # bytes in the file that are whole rows
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._max_pending = max_pending
        self.dropped_rows = 0
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def write(self, row: str) -> int:
        data = row.encode()
        if self._pending_bytes + len(data) > self._max_pending:
            self.dropped_rows += 1
        else:
            self._pending.append(data)
            self._pending_bytes += len(data)
        return len(row)

    def flush(self) -> None:
        """Append every pending row, or none of them (raises the OSError; the rows stay pending)."""
        if not self._pending:
            return
        data = memoryview(b"".join(self._pending))
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            self._cut_back()
            raise
        self._whole += len(data)
        self._pending.clear()
        self._pending_bytes = 0

    def _cut_back(self) -> None:
        """Drop a partly written flush from the file (not possible on a pipe or device: nothing to do there)."""
        try:
            os.ftruncate(self._fd, self._whole)
            os.lseek(self._fd, self._whole, os.SEEK_SET)
        except OSError:
            pass

    def sync(self) -> bool:
        """fsync what was written; a pipe or device that cannot sync is fine, an I/O error is False."""
        try:
            os.fsync(self._fd)
        except OSError as exc:
            return exc.errno in (errno.EINVAL, errno.EROFS)
        return True

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Close without flushing: the caller flushes first and decides what a failure means."""
        if not self.closed:
            self.closed = True
            os.close(self._fd)
