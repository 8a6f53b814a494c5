"""GPU memory: used and total per GPU, and what each process holds on the GPUs.

- `nvidia-smi` (NVIDIA only), both figures: `--query-gpu` for each GPU, `--query-compute-apps`
  for each process (the latter answers `[N/A]` under Windows' WDDM driver, every consumer card).
- On Windows, the `GPU Process Memory` performance counters, for each process on any GPU
  (daemon.gpu_windows, run as a child).
- On Linux, DRM fdinfo for each process asked about, on AMD and Intel GPUs (daemon.gpu_drm).

Each is run in a thread at most every `GPU_EVERY_S` with a short timeout, only while someone is
looking (`ps`, the dashboard, the gateway's `/metrics` and memory budgets), and nobody waits for
it: the last reading is answered. What no source reports (per-GPU totals without nvidia-smi, any
GPU on macOS) is None, shown as absent, rather than a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from llama_orchestrator._platform import IS_WINDOWS, PLATFORM
from llama_orchestrator.daemon import gpu_drm, gpu_windows

GPU_EVERY_S = 5.0
GPU_TIMEOUT_S = 2.0
NVIDIA_SMI_ARGS = ("--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits")
NVIDIA_SMI_APPS_ARGS = ("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
# a console program started by the windowless daemon would flash a console window on Windows
NO_WINDOW = 0x08000000 if IS_WINDOWS else 0  # CREATE_NO_WINDOW

Figures = list[tuple[float, float]]  # (used, total) MiB per GPU, in nvidia-smi's order
_Reading = tuple[Figures | None, dict[int, int]]


def nvidia_smi_figures(output: str) -> list[tuple[float, float]] | None:
    """`nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits` as (used, total)
    MiB per GPU, in its order; None when unreadable."""
    figures = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2:
            return None
        try:
            figures.append((float(fields[0]), float(fields[1])))
        except ValueError:
            return None
    return figures or None


def nvidia_smi_processes(output: str) -> dict[int, int]:
    """`nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits` as bytes per
    pid, summed over GPUs; lines it cannot read (`[N/A]` under Windows' WDDM) are left out."""
    used: dict[int, int] = {}
    for line in output.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2:
            continue
        try:
            pid, mib = int(fields[0]), float(fields[1])
        except ValueError:
            continue
        used[pid] = used.get(pid, 0) + int(mib * 2**20)
    return used


def describe_gpu_memory(figures: Sequence[tuple[float, float]] | None) -> str | None:
    """(used, total) MiB per GPU as "1.2/8.0 GiB", or "1.2/8.0, 0.3/24.0 GiB" for several."""
    if not figures:
        return None
    return ", ".join(f"{used / 1024:.1f}/{total / 1024:.1f}" for used, total in figures) + " GiB"


class GpuMemory:
    """The last GPU memory reading, refreshed at most every `GPU_EVERY_S`.

    `per_process_command`: a command printing `{"<pid>": <bytes>}` (daemon.gpu_windows); the
    default is that module on Windows and nothing elsewhere. `drm_proc`: the /proc whose DRM
    fdinfo is read for the pids asked about (Linux's by default). nvidia-smi's own per-process
    figures win where several sources have one."""

    def __init__(
        self, environ: Mapping[str, str], *, monotonic: Callable[[], float] = time.monotonic,
        per_process_command: Sequence[str] | None = gpu_windows.COMMAND if IS_WINDOWS else None,
        drm_proc: Path | None = Path("/proc") if PLATFORM == "linux" else None,
    ) -> None:
        self._environ = dict(environ)
        self._monotonic = monotonic
        self._binary = shutil.which("nvidia-smi", path=self._environ.get("PATH"))
        self._per_process = per_process_command
        self._drm_proc = drm_proc
        self._asked: set[int] = set()  # pids asked about since the last reading (their DRM fdinfo is read)
        self._value: Figures | None = None
        self._processes: dict[int, int] = {}
        self._at: float | None = None
        self._task: asyncio.Future[_Reading] | None = None

    def current(self) -> str | None:
        """The last reading in words ("1.2/8.0 GiB"); see `figures`."""
        return describe_gpu_memory(self.figures())

    def figures(self) -> Figures | None:
        """The last reading, (used, total) MiB per GPU; None without nvidia-smi. Starts a refresh
        in a thread when it is older than `GPU_EVERY_S`."""
        self._refresh()
        return self._value

    def process_bytes(self, pid: int) -> int | None:
        """What process `pid` held on the GPUs at the last reading (refreshed as `figures` is);
        None when no source listed it."""
        self._asked.add(pid)
        self._refresh()
        return self._processes.get(pid)

    def _refresh(self) -> None:
        if self._binary is None and self._per_process is None and self._drm_proc is None:
            return
        now = self._monotonic()
        if self._task is None and (self._at is None or now - self._at >= GPU_EVERY_S):
            self._at = now
            asked, self._asked = self._asked, set()
            self._task = asyncio.ensure_future(asyncio.to_thread(self._query, asked))
            self._task.add_done_callback(self._store)

    def _store(self, task: asyncio.Future[_Reading]) -> None:
        self._task = None
        if not task.cancelled():
            self._value, self._processes = task.result()

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _query(self, asked: set[int]) -> _Reading:
        figures, processes = None, {}
        if self._drm_proc is not None:
            for pid in asked:
                if (held := gpu_drm.process_vram(pid, self._drm_proc)) is not None:
                    processes[pid] = held
        if self._per_process is not None and (counted := self._run(self._per_process)) is not None:
            processes.update(gpu_windows.parse_output(counted) or {})
        if self._binary is not None and (out := self._run((self._binary, *NVIDIA_SMI_ARGS))) is not None:
            figures = nvidia_smi_figures(out)
            if (apps := self._run((self._binary, *NVIDIA_SMI_APPS_ARGS))) is not None:
                processes.update(nvidia_smi_processes(apps))
        return figures, processes

    def _run(self, command: Sequence[str]) -> str | None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc = subprocess.run(
                list(command),
                env=self._environ,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=GPU_TIMEOUT_S,
                check=False,
                creationflags=NO_WINDOW,
            )
            if proc.returncode == 0:
                return proc.stdout
        return None
