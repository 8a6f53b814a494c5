"""daemon.gpu_drm: GPU memory per process from DRM fdinfo (AMD and Intel on Linux), over a
stand-in /proc written by the test (real files; this machine has no GPU)."""

from __future__ import annotations

import os
from pathlib import Path

from llama_orchestrator.daemon import gpu_drm
from llama_orchestrator.daemon.gpu_memory import GpuMemory

AMDGPU = """pos:\t0
flags:\t02100002
drm-driver:\tamdgpu
drm-pdev:\t0000:03:00.0
drm-client-id:\t42
drm-memory-vram:\t3145728 KiB
drm-memory-gtt:\t2048 KiB
drm-resident-vram:\t3145728 KiB
drm-resident-gtt:\t2048 KiB
drm-engine-gfx:\t1234567 ns
"""
XE = """drm-driver:\txe
drm-pdev:\t0000:00:02.0
drm-client-id:\t7
drm-total-vram0:\t2 GiB
drm-resident-vram0:\t512 MiB
drm-resident-system:\t64 MiB
"""
OLD_AMDGPU = "drm-driver:\tamdgpu\ndrm-pdev:\t0000:03:00.0\ndrm-client-id:\t9\ndrm-memory-vram:\t1024 KiB\n"


def test_one_descriptor_says_its_client_and_the_gpu_memory_resident() -> None:
    assert gpu_drm.client_vram(AMDGPU) == (("0000:03:00.0", "42"), 3 * 2**30)  # not GTT (system memory)
    assert gpu_drm.client_vram(XE) == (("0000:00:02.0", "7"), 512 * 2**20)
    assert gpu_drm.client_vram(OLD_AMDGPU) == (("0000:03:00.0", "9"), 2**20)  # the older key alone
    assert gpu_drm.client_vram("pos:\t0\nflags:\t02\n") is None  # a file, not a GPU
    assert gpu_drm.client_vram("drm-driver:\tnouveau\ndrm-client-id:\t1\n") is None  # says no memory


def fake_proc(root: Path, pid: int, *fdinfos: str) -> None:
    folder = root / str(pid) / "fdinfo"
    folder.mkdir(parents=True)
    for fd, text in enumerate(fdinfos):
        (folder / str(fd)).write_text(text)


def test_a_process_counts_each_client_once_over_all_its_descriptors(tmp_path: Path) -> None:
    fake_proc(tmp_path, 4242, "pos:\t0\n", AMDGPU, AMDGPU, XE)  # two descriptors of one amdgpu client
    fake_proc(tmp_path, 77, "pos:\t0\nflags:\t0\n")
    assert gpu_drm.process_vram(4242, tmp_path) == 3 * 2**30 + 512 * 2**20
    assert gpu_drm.process_vram(77, tmp_path) is None
    assert gpu_drm.process_vram(5, tmp_path) is None  # no such process


def test_our_own_process_has_no_gpu_here() -> None:
    assert gpu_drm.process_vram(os.getpid()) is None  # the real /proc, read as the daemon would


async def test_gpu_memory_reads_fdinfo_for_the_pids_asked_about(tmp_path: Path) -> None:
    fake_proc(tmp_path, 4242, AMDGPU)
    gpu = GpuMemory({"PATH": ""}, per_process_command=None, drm_proc=tmp_path)
    assert gpu.process_bytes(4242) is None  # asked: the reading starts, nobody waits for it
    await gpu.close()
    assert gpu.process_bytes(4242) == 3 * 2**30 and gpu.figures() is None
