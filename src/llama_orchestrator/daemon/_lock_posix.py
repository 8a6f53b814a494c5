"""POSIX twin of `_lock_windows`: an advisory flock on the lock file."""

from __future__ import annotations

import fcntl


def try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
