"""CPU and memory of each child, sampled on demand for `ps` and the dashboard.

psutil's cpu_percent needs the previous reading of the same Process object, so the objects are
kept per pid between calls and forgotten when the pid goes away.
"""

from __future__ import annotations

import psutil


class ResourceSampler:
    def __init__(self) -> None:
        self._processes: dict[int, psutil.Process] = {}

    def sample(self, pid: int | None) -> tuple[float | None, int | None]:
        """(cpu percent since the last sample of this pid, resident bytes), or (None, None)."""
        if pid is None:
            return None, None
        proc = self._processes.get(pid)
        try:
            if proc is None:
                proc = self._processes[pid] = psutil.Process(pid)
                proc.cpu_percent(None)
                return None, proc.memory_info().rss
            with proc.oneshot():
                return proc.cpu_percent(None), proc.memory_info().rss
        except psutil.Error:
            self._processes.pop(pid, None)
            return None, None


def resident_bytes(pid: int) -> int | None:
    """The resident size of process `pid` now; None when it is gone or not ours to read."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None
