"""Windows twin of `_lock_posix`: msvcrt.locking on the first byte of the lock file.

The lock belongs to the open handle and is released when the process ends, however it ends.
"""

from __future__ import annotations

import os


def try_lock(fd: int) -> bool:
    import msvcrt

    os.lseek(fd, 0, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        return False
    return True
