"""Instance log files that a live child appends to: rotation, tail, follow.

The child holds its log open with O_APPEND for its whole life, so rotation is copy-then-
truncate (renaming would leave the child writing into the rotated file, and on Windows renaming
an open file fails). Reading is by path and never keeps the file open between polls.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

logger = logging.getLogger(__name__)

LOG_FILE_MODE = 0o600  # the same as the live log's (engine.spawn)
COPY_CHUNK = 1024 * 1024
TAIL_BLOCK = 64 * 1024
FOLLOW_POLL_S = 0.15
DISK_FULL_REPORT_INTERVAL_S = 60.0
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})

__all__ = ["backup_path", "follow", "rotate_if_needed", "tail_lines"]


class _RateLimitedWarning:
    """Log a warning at most once per interval (stdlib logging would print one per record)."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._last: float | None = None
        self.suppressed = 0

    def warn(self, message: str, *args: object) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            self.suppressed += 1
            return
        extra = f" ({self.suppressed} more suppressed)" if self.suppressed else ""
        logger.warning(message + extra, *args)
        self._last = now
        self.suppressed = 0


_disk_full = _RateLimitedWarning(DISK_FULL_REPORT_INTERVAL_S)


def backup_path(path: Path, index: int) -> Path:
    """`<name>.<index>`: `.1` is the newest rotated file."""
    return path.with_name(f"{path.name}.{index}")


def rotate_all(jobs: list[tuple[Path, int, int]]) -> None:
    """`rotate_if_needed` for each (path, max_bytes, backups)."""
    for path, max_bytes, backups in jobs:
        rotate_if_needed(path, max_bytes, backups)


def rotate_if_needed(path: Path, max_bytes: int, backups: int) -> bool:
    """Rotate `path` when it reached `max_bytes`: shift .1→.2…, copy to .1, truncate to 0.

    Returns True when it rotated. Safe while a child appends with O_APPEND: its next write
    lands at the new end (offset 0 after the truncate). The copy loops until it reaches the end
    of file, so lines written during the copy are copied too, and the truncate follows the read
    that saw EOF with no Python work in between. The remaining race, honestly: bytes the child
    writes between that read and the ftruncate are lost (never duplicated). Normally that is
    microseconds, but if this thread is preempted right there it is as long as the preemption
    (measured with a 4 MB/s writer on a loaded 2-CPU box: ~5-40 lines lost per 300,000 lines
    in most runs, once a 60 ms burst). A line being written across that instant may be split
    between `.1` and the new file. Linux's FALLOC_FL_COLLAPSE_RANGE could remove exactly the
    copied blocks with no loss on ext4/xfs; not done yet. With `backups=0` the file is only
    truncated. Blocks for the copy (up to `max_bytes`): call it through `asyncio.to_thread`.

    Disk full (ENOSPC/EDQUOT) never raises: the original is left untouched, the function
    returns False and a warning is logged at most once a minute. Other OSErrors propagate.
    """
    try:
        if path.stat().st_size < max_bytes:
            return False
    except FileNotFoundError:
        return False
    try:
        if backups > 0:
            _shift_backups(path, backups)
            _copy_all_then_truncate(path, backup_path(path, 1))
        else:
            os.truncate(path, 0)
    except OSError as exc:
        if exc.errno not in _DISK_FULL_ERRNOS:
            raise
        _disk_full.warn("cannot rotate %s: disk full (%s); the log keeps growing", path, exc)
        return False
    return True


def _shift_backups(path: Path, backups: int) -> None:
    backup_path(path, backups).unlink(missing_ok=True)
    for index in range(backups - 1, 0, -1):
        older = backup_path(path, index)
        if older.exists():
            os.replace(older, backup_path(path, index + 1))


def _copy_all_then_truncate(src: Path, dst: Path) -> None:
    # Read until EOF, so whatever the child appended while we copied is copied as well, and
    # truncate through the same raw descriptor right after the read that saw EOF, with no
    # Python work in between (a wider gap measurably lost lines from a fast writer).
    src_fd = os.open(src, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        with open(open_private(dst), "wb") as writer:
            while chunk := os.read(src_fd, COPY_CHUNK):
                writer.write(chunk)
            writer.flush()
            while chunk := os.read(src_fd, COPY_CHUNK):  # the tail written during the flush
                writer.write(chunk)
            os.ftruncate(src_fd, 0)
    finally:
        os.close(src_fd)


def open_private(path: str | Path, *, append: bool = False) -> int:
    """A descriptor writing `path` (truncated, or appended to), created mode 0600 on POSIX and
    narrowed to it if it existed: every log is as private as the live one (logs can contain
    prompts). Windows has no such modes."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, LOG_FILE_MODE)
    if sys.platform != "win32":
        try:
            os.fchmod(fd, LOG_FILE_MODE)  # the umask only narrows; an existing file kept its mode
        except OSError:
            os.close(fd)
            raise
    return fd


def _tail_of_file(path: Path, n: int) -> list[str]:
    """Last `n` lines of one file, reading backwards in blocks (never the whole file)."""
    if n <= 0:
        return []
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            pos, data = end, b""
            while pos > 0 and data.count(b"\n") <= n:
                step = min(TAIL_BLOCK, pos)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if pos > 0 and lines:
        lines = lines[1:]  # the first one may be cut in the middle
    return lines[-n:]


def tail_lines(path: Path, n: int) -> list[str]:
    """Return the last `n` lines (without newlines), continuing into `<name>.1` if needed."""
    lines = _tail_of_file(path, n)
    if len(lines) < n:
        lines = _tail_of_file(backup_path(path, 1), n - len(lines)) + lines
    return lines


async def follow(
    path: Path, from_end_lines: int = 10, *, poll_s: float = FOLLOW_POLL_S
) -> AsyncIterator[str]:
    """Yield the last `from_end_lines` lines, then every new line as it is written.

    Polls the size every `poll_s`; when the file shrinks (rotated by copy-truncate) it starts
    again from offset 0. A file that is truncated and grows past our offset within one poll
    interval is not noticed (the lines in between are skipped). Waits for the file to exist.
    Runs until cancelled (`aclose()` or task cancellation).
    """
    for line in tail_lines(path, from_end_lines):
        yield line
    offset = _size(path)
    pending = b""
    while True:
        size = _size(path)
        if size < offset:
            offset, pending = 0, b""
        if size > offset:
            chunk = _read_range(path, offset, size)
            offset += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                yield raw.rstrip(b"\r").decode("utf-8", errors="replace")
            continue
        await asyncio.sleep(poll_s)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_range(path: Path, start: int, end: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read(end - start)
    except FileNotFoundError:
        return b""
