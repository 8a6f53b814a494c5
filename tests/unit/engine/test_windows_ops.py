"""The Windows process-tree sequence, checked on any OS through a recording Win32Api fake."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import psutil
import pytest

from llama_orchestrator.engine import _windows
from llama_orchestrator.engine._windows import (
    CREATE_NEW_PROCESS_GROUP,
    CREATE_NO_WINDOW,
    CTRL_BREAK_EVENT,
    JobObjectExtendedLimitInformation,
    WindowsOps,
    taskkill_argv,
)
from llama_orchestrator.engine.child import ChildProcess

JOB, PROCESS = 1001, 2002


class FakeWin32Api:
    """Records every call as (name, args); `fail` names calls that raise OSError."""

    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.fail = fail

    def _record(self, name: str, *args: int) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise OSError(5, f"{name} failed")

    def create_job_object(self) -> int:
        self._record("CreateJobObjectW")
        return JOB

    def set_kill_on_job_close(self, job: int) -> None:
        self._record("SetInformationJobObject(KILL_ON_JOB_CLOSE)", job)

    def open_process(self, access: int, pid: int) -> int:
        self._record("OpenProcess", access, pid)
        return PROCESS

    def assign_process_to_job_object(self, job: int, process: int) -> None:
        self._record("AssignProcessToJobObject", job, process)

    def generate_console_ctrl_event(self, event: int, process_group_id: int) -> None:
        self._record("GenerateConsoleCtrlEvent", event, process_group_id)

    def terminate_job_object(self, job: int, exit_code: int) -> None:
        self._record("TerminateJobObject", job, exit_code)

    def close_handle(self, handle: int) -> None:
        self._record("CloseHandle", handle)


class RecordingRunner:
    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, argv: list[str]) -> int:
        self.commands.append(argv)
        return 0


def live_child(job: int | None = None) -> ChildProcess:
    """A record naming this test process: alive, matching create time, never really signalled."""
    me = psutil.Process()
    return ChildProcess("w", os.getpid(), me.create_time(), "boot", "tok", popen=None, job_handle=job)


def test_popen_kwargs_new_group_and_no_window() -> None:
    flags = _windows.popen_kwargs()["creationflags"]
    assert flags == CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW == 0x08000200
    assert WindowsOps(FakeWin32Api()).popen_kwargs() == _windows.popen_kwargs()
    if sys.platform == "win32":
        assert subprocess.CREATE_NEW_PROCESS_GROUP == CREATE_NEW_PROCESS_GROUP
        assert subprocess.CREATE_NO_WINDOW == CREATE_NO_WINDOW


def test_after_spawn_puts_child_in_kill_on_close_job() -> None:
    api = FakeWin32Api()
    child = live_child()
    WindowsOps(api).after_spawn(child)
    assert api.calls == [
        ("CreateJobObjectW", ()),
        ("SetInformationJobObject(KILL_ON_JOB_CLOSE)", (JOB,)),
        ("OpenProcess", (0x0101, child.pid)),  # PROCESS_SET_QUOTA | PROCESS_TERMINATE
        ("AssignProcessToJobObject", (JOB, PROCESS)),
        ("CloseHandle", (PROCESS,)),
    ]
    assert child.job_handle == JOB


def test_after_spawn_failure_closes_the_job_and_raises() -> None:
    api = FakeWin32Api(fail=frozenset({"AssignProcessToJobObject"}))
    child = live_child()
    with pytest.raises(OSError):
        WindowsOps(api).after_spawn(child)
    assert api.calls[-2:] == [("CloseHandle", (PROCESS,)), ("CloseHandle", (JOB,))]
    assert child.job_handle is None


def test_stop_sequence_ctrl_break_then_terminate_job_then_close() -> None:
    api = FakeWin32Api()
    ops = WindowsOps(api, run=RecordingRunner())
    child = live_child(job=JOB)
    assert ops.terminate_tree(child)
    assert ops.kill_tree_now(child) == [child.pid]
    ops.release(child)
    assert api.calls == [
        ("GenerateConsoleCtrlEvent", (CTRL_BREAK_EVENT, child.pid)),
        ("TerminateJobObject", (JOB, 1)),
        ("CloseHandle", (JOB,)),
    ]
    assert child.job_handle is None


def test_undeliverable_ctrl_break_reports_false() -> None:
    api = FakeWin32Api(fail=frozenset({"GenerateConsoleCtrlEvent"}))
    assert not WindowsOps(api).terminate_tree(live_child(job=JOB))


def test_adopted_child_without_job_is_killed_with_taskkill_tree() -> None:
    api, runner = FakeWin32Api(), RecordingRunner()
    child = live_child(job=None)
    assert WindowsOps(api, run=runner).kill_tree_now(child) == [child.pid]
    assert runner.commands == [["taskkill", "/T", "/F", "/PID", str(child.pid)]]
    assert taskkill_argv(42) == ["taskkill", "/T", "/F", "/PID", "42"]
    assert api.calls == []


def test_reused_pid_is_never_signalled_or_taskkilled() -> None:
    api, runner = FakeWin32Api(), RecordingRunner()
    child = live_child(job=None)
    child.create_time -= 1000
    ops = WindowsOps(api, run=runner)
    assert not ops.terminate_tree(child)
    assert ops.kill_tree_now(child) == []
    assert api.calls == [] and runner.commands == []


def test_job_limit_structure_matches_the_win64_layout() -> None:
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(JobObjectExtendedLimitInformation) == 144


def test_module_imports_without_touching_win32() -> None:
    # Importing must not create the ctypes API (no WinDLL off Windows); it is made lazily.
    assert _windows._default_ops is None or sys.platform == "win32"


@pytest.mark.skipif(sys.platform == "win32", reason="checks the POSIX choice")
def test_platform_ops_picks_posix_here() -> None:
    from llama_orchestrator.engine import _posix, platform_ops

    assert platform_ops.terminate_tree is _posix.terminate_tree
    assert platform_ops.popen_kwargs() == {"start_new_session": True}
