"""One daemon per home: an exclusive lock on `<home>/run/daemon.lock`, released by the OS on death.

flock (POSIX) and msvcrt.locking (Windows) both die with the process, so a SIGKILLed daemon
never leaves a stale lock behind; the pid written inside is only for messages.
"""

from __future__ import annotations

import os
from pathlib import Path

from llama_orchestrator._platform import IS_WINDOWS


class DaemonLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if IS_WINDOWS:
            from llama_orchestrator.daemon import _lock_windows as ops
        else:
            from llama_orchestrator.daemon import _lock_posix as ops  # type: ignore[no-redef]
        if not ops.try_lock(fd):
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder_pid(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
