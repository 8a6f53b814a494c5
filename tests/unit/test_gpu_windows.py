"""daemon.gpu_windows and its use by GpuMemory: the Windows `GPU Process Memory` counters, read
in a child process. pdh.dll cannot run here; the instance names, the child's output and the
daemon's side (a real child process, a stand-in command) can."""

from __future__ import annotations

import json
import subprocess
import sys

from llama_orchestrator.daemon import gpu_windows
from llama_orchestrator.daemon.gpu_memory import GpuMemory


def test_counter_instances_become_bytes_per_pid_summed_over_adapters() -> None:
    items = [
        ("pid_4242_luid_0x00000000_0x0000D1F3_phys_0", 3 * 2**30),  # a llama-server on the discrete GPU
        ("pid_4242_luid_0x00000000_0x0000A1B2_phys_0", 2**20),  # and a little on the integrated one
        ("pid_77_luid_0x00000000_0x0000D1F3_phys_0", 0),
        ("_Total", 5 * 2**30),  # not a process
        ("pid_x_luid_0", 9),
    ]
    assert gpu_windows.by_pid(items) == {4242: 3 * 2**30 + 2**20, 77: 0}


def test_the_childs_output_is_read_back_and_anything_else_is_nothing() -> None:
    assert gpu_windows.parse_output(json.dumps({"4242": 3 * 2**30})) == {4242: 3 * 2**30}
    for odd in ("", "[1]", '{"x": 1}', '{"1": "lots"}', "Traceback (most recent call last):"):
        assert gpu_windows.parse_output(odd) is None


def test_the_child_says_it_reads_windows_counters_only_and_exits_1_elsewhere() -> None:
    assert (sys.executable, "-m", "llama_orchestrator.daemon.gpu_windows") == gpu_windows.COMMAND
    done = subprocess.run(gpu_windows.COMMAND, capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert "Windows only" in done.stderr


async def test_gpu_memory_takes_per_process_figures_from_the_command_without_nvidia_smi() -> None:
    script = "import json; print(json.dumps({'4242': 3 * 2**30, '77': 0}))"
    gpu = GpuMemory({"PATH": ""}, per_process_command=(sys.executable, "-c", script), drm_proc=None)  # no nvidia-smi
    assert gpu.process_bytes(4242) is None  # the first look starts a reading; nobody waits for it
    await gpu.close()  # (waits for the reading in progress)
    assert (gpu.process_bytes(4242), gpu.process_bytes(77), gpu.process_bytes(1)) == (3 * 2**30, 0, None)
    assert gpu.figures() is None  # per-GPU totals come from nvidia-smi only


def test_without_nvidia_smi_or_a_command_nothing_is_read() -> None:
    # no event loop here: starting a reading would raise
    gpu = GpuMemory({"PATH": ""}, per_process_command=None, drm_proc=None)
    assert gpu.process_bytes(1) is None and gpu.figures() is None
