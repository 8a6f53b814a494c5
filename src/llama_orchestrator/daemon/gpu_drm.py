"""GPU memory per process on Linux for AMD and Intel GPUs (Vulkan builds): DRM fdinfo.

nvidia-smi covers NVIDIA only. The kernel's DRM drivers (amdgpu, i915, xe, ...) publish each
open GPU file's memory in `/proc/<pid>/fdinfo/<fd>` (Documentation/gpu/drm-usage-stats.rst):

    drm-driver:       amdgpu
    drm-pdev:         0000:03:00.0
    drm-client-id:    42
    drm-resident-vram:  3145728 KiB      (generic key; i915 calls its VRAM `local0`, xe `vram0`)
    drm-memory-vram:    3145728 KiB      (amdgpu's older key, the same figure)

Several descriptors of one process can share a client (`drm-client-id` on one `drm-pdev`): each
client is counted once. Reading needs the process to be ours (or root), as llama-server is.
"""

from __future__ import annotations

import re
from pathlib import Path

_UNITS = {"": 1, "KiB": 1024, "MiB": 1024 * 1024, "GiB": 1024**3}
_DEVICE_MEMORY = re.compile(r"(vram|local)\d*")  # the GPU's own memory, not system memory it maps


def client_vram(fdinfo: str) -> tuple[tuple[str, str], int] | None:
    """((device, client id), bytes of GPU memory resident) from one descriptor's fdinfo; None when
    it is not a DRM client that says."""
    fields: dict[str, str] = {}
    sizes = {"drm-resident": 0, "drm-memory": 0}
    found = False
    for line in fdinfo.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        kind, _, region = name.strip().rpartition("-")
        if kind in sizes and _DEVICE_MEMORY.fullmatch(region):
            unit = _UNITS.get(parts[1] if len(parts) > 1 else "")
            if parts[0].isdigit() and unit is not None:
                sizes[kind] += int(parts[0]) * unit
                found = True
        else:
            fields[name.strip()] = parts[0]
    if "drm-driver" not in fields or not found:
        return None
    client = (fields.get("drm-pdev", ""), fields.get("drm-client-id", ""))
    return client, sizes["drm-resident"] or sizes["drm-memory"]


def process_vram(pid: int, proc: Path = Path("/proc")) -> int | None:
    """GPU memory process `pid` holds over all its DRM clients; None when it has none that says
    (no GPU, NVIDIA's driver, or not ours to read)."""
    try:
        entries = list((proc / str(pid) / "fdinfo").iterdir())
    except OSError:
        return None
    clients: dict[tuple[str, str], int] = {}
    for entry in entries:
        try:
            text = entry.read_text(errors="replace")
        except OSError:
            continue  # the descriptor was closed meanwhile
        if (found := client_vram(text)) is not None:
            clients[found[0]] = found[1]
    return sum(clients.values()) if clients else None
