"""GPU memory per process on Windows, for any GPU: the `GPU Process Memory` performance counters.

nvidia-smi reports no per-process memory under Windows' WDDM driver (every consumer NVIDIA card),
and AMD and Intel GPUs have no nvidia-smi at all. Windows itself counts each process's dedicated
GPU memory for Task Manager, whatever the API (CUDA, Vulkan, DirectX), and publishes it as the
performance counter `\\GPU Process Memory(pid_<pid>_luid_<adapter>_phys_<n>)\\Dedicated Usage`.

The daemon runs this module as a child process (`COMMAND`), the way it runs nvidia-smi: the
counters are read through pdh.dll with ctypes, and a mistake there ends the child, never the
daemon. The child prints `{"<pid>": <bytes>, ...}` (summed over adapters) and exits 0, or says
what failed on stderr and exits 1. Importing it touches no Windows API (it imports on Linux).

    python -m llama_orchestrator.daemon.gpu_windows
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable

COUNTER = r"\GPU Process Memory(*)\Dedicated Usage"  # English name: PdhAddEnglishCounterW, any UI language
COMMAND = (sys.executable, "-m", "llama_orchestrator.daemon.gpu_windows")
_INSTANCE = re.compile(r"pid_(\d+)_")
_PDH_FMT_LARGE = 0x00000400
_PDH_MORE_DATA = 0x800007D2


def by_pid(items: Iterable[tuple[str, int]]) -> dict[int, int]:
    """Counter instances (`pid_1234_luid_0x00000000_0x0000D1F3_phys_0`, bytes) as bytes per pid,
    summed over the adapters a process uses; names without a pid are left out."""
    used: dict[int, int] = {}
    for name, value in items:
        if match := _INSTANCE.match(name):
            pid = int(match.group(1))
            used[pid] = used.get(pid, 0) + max(0, value)
    return used


def parse_output(text: str) -> dict[int, int] | None:
    """What the child printed, as bytes per pid; None when it is not that."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return {int(pid): int(value) for pid, value in data.items()}
    except (TypeError, ValueError):
        return None


def read_counter() -> list[tuple[str, int]]:  # pragma: no cover - Windows only
    """Every instance of COUNTER now, through pdh.dll (Windows 10 1709 and later)."""
    import ctypes
    from ctypes import wintypes

    class _Value(ctypes.Structure):
        _fields_ = [("CStatus", wintypes.DWORD), ("largeValue", ctypes.c_longlong)]  # the union's LONGLONG

    class _Item(ctypes.Structure):
        _fields_ = [("szName", wintypes.LPWSTR), ("FmtValue", _Value)]

    pdh = ctypes.WinDLL("pdh")  # type: ignore[attr-defined]
    query, counter = wintypes.HANDLE(), wintypes.HANDLE()
    _check(pdh.PdhOpenQueryW(None, None, ctypes.byref(query)), "PdhOpenQueryW")
    try:
        _check(pdh.PdhAddEnglishCounterW(query, COUNTER, None, ctypes.byref(counter)), "PdhAddEnglishCounterW")
        _check(pdh.PdhCollectQueryData(query), "PdhCollectQueryData")
        size, count = wintypes.DWORD(0), wintypes.DWORD(0)
        status = pdh.PdhGetFormattedCounterArrayW(counter, _PDH_FMT_LARGE, ctypes.byref(size), ctypes.byref(count),
                                                  None)
        if status & 0xFFFFFFFF != _PDH_MORE_DATA:
            _check(status, "PdhGetFormattedCounterArrayW (size)")
            return []
        buffer = ctypes.create_string_buffer(size.value)
        _check(pdh.PdhGetFormattedCounterArrayW(counter, _PDH_FMT_LARGE, ctypes.byref(size), ctypes.byref(count),
                                                buffer), "PdhGetFormattedCounterArrayW")
        items = ctypes.cast(buffer, ctypes.POINTER(_Item))
        return [(items[i].szName or "", int(items[i].FmtValue.largeValue)) for i in range(count.value)]
    finally:
        pdh.PdhCloseQuery(query)


def _check(status: int, call: str) -> None:  # pragma: no cover - Windows only
    if status & 0xFFFFFFFF:
        raise OSError(f"{call} failed with PDH status 0x{status & 0xFFFFFFFF:08X}")


def main() -> int:
    if sys.platform != "win32":
        print("the GPU Process Memory counters exist on Windows only", file=sys.stderr)
        return 1
    try:  # pragma: no cover - Windows only
        print(json.dumps(by_pid(read_counter())))
    except OSError as exc:  # pragma: no cover - Windows only
        print(f"cannot read {COUNTER}: {exc}", file=sys.stderr)
        return 1
    return 0  # pragma: no cover - Windows only


if __name__ == "__main__":
    sys.exit(main())
