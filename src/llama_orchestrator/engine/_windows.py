"""Windows process-tree control: a Job Object per child, CTRL_BREAK, then TerminateJobObject.

Same function names as `_posix.py`; `platform_ops` imports this module only on Windows, but it
imports cleanly everywhere: every Win32 call goes through the `Win32Api` Protocol, whose ctypes
implementation (`CtypesWin32Api`) is created lazily on first use, so tests on Linux drive
`WindowsOps` with a recording fake and check the exact call sequence.

Caveats, stated honestly:
- The child runs a moment before it is assigned to its Job Object (Popen cannot hand us the
  suspended main thread to resume). llama-server does not spawn anything at start-up, so the
  window does not matter in practice.
- `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` means the tree dies when the daemon dies (its handle
  closes), so on Windows the policy is "die with the daemon", not re-adoption.
- llama-server handles only CTRL_C_EVENT, and CTRL_BREAK reaches a group only when we share its
  console (reliability.md 0.2); when the event cannot be delivered `terminate_tree` returns
  False and the stop becomes an immediate TerminateJobObject.
"""

from __future__ import annotations

import ctypes
import logging
import subprocess
from collections.abc import Callable
from typing import Any, Protocol

from llama_orchestrator.engine.child import ChildProcess
from llama_orchestrator.engine.identity import ProcessState, process_state

logger = logging.getLogger(__name__)

__all__ = [
    "CREATE_NEW_PROCESS_GROUP",
    "CREATE_NO_WINDOW",
    "CTRL_BREAK_EVENT",
    "CtypesWin32Api",
    "Win32Api",
    "WindowsOps",
    "after_spawn",
    "kill_tree_now",
    "popen_kwargs",
    "release",
    "taskkill_argv",
    "terminate_tree",
]

# Literal values: `subprocess` defines these names only on Windows.
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000
CTRL_BREAK_EVENT = 1
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9  # JobObjectExtendedLimitInformation
PROCESS_TERMINATE = 0x0001
PROCESS_SET_QUOTA = 0x0100
KILLED_EXIT_CODE = 1


class JobObjectBasicLimitInformation(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", ctypes.c_uint32),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", ctypes.c_uint32),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", ctypes.c_uint32),
        ("SchedulingClass", ctypes.c_uint32),
    ]


class IoCounters(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
            "ReadTransferCount", "WriteTransferCount", "OtherTransferCount",
        )
    ]


class JobObjectExtendedLimitInformation(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", JobObjectBasicLimitInformation),
        ("IoInfo", IoCounters),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


class Win32Api(Protocol):
    """The Win32 calls the engine makes; each raises OSError when the call fails."""

    def create_job_object(self) -> int: ...
    def set_kill_on_job_close(self, job: int) -> None: ...
    def open_process(self, access: int, pid: int) -> int: ...
    def assign_process_to_job_object(self, job: int, process: int) -> None: ...
    def generate_console_ctrl_event(self, event: int, process_group_id: int) -> None: ...
    def terminate_job_object(self, job: int, exit_code: int) -> None: ...
    def close_handle(self, handle: int) -> None: ...


class CtypesWin32Api:
    """`Win32Api` through kernel32 via ctypes. Construct it only on Windows."""

    def __init__(self) -> None:
        win_dll: Any = getattr(ctypes, "WinDLL")  # noqa: B009 - absent from ctypes off Windows
        self._k32: Any = win_dll("kernel32", use_last_error=True)

    def _check(self, ok: int, what: str) -> int:
        if not ok:
            get_last_error: Callable[[], int] = getattr(ctypes, "get_last_error")  # noqa: B009
            code = get_last_error()
            raise OSError(code, f"{what} failed (Win32 error {code})")
        return ok

    def create_job_object(self) -> int:
        self._k32.CreateJobObjectW.restype = ctypes.c_void_p
        return self._check(self._k32.CreateJobObjectW(None, None), "CreateJobObjectW")

    def set_kill_on_job_close(self, job: int) -> None:
        info = JobObjectExtendedLimitInformation()
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        ok = self._k32.SetInformationJobObject(
            ctypes.c_void_p(job), JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
            ctypes.byref(info), ctypes.sizeof(info),
        )
        self._check(ok, "SetInformationJobObject")

    def open_process(self, access: int, pid: int) -> int:
        self._k32.OpenProcess.restype = ctypes.c_void_p
        return self._check(self._k32.OpenProcess(access, False, pid), "OpenProcess")

    def assign_process_to_job_object(self, job: int, process: int) -> None:
        ok = self._k32.AssignProcessToJobObject(ctypes.c_void_p(job), ctypes.c_void_p(process))
        self._check(ok, "AssignProcessToJobObject")

    def generate_console_ctrl_event(self, event: int, process_group_id: int) -> None:
        self._check(self._k32.GenerateConsoleCtrlEvent(event, process_group_id), "GenerateConsoleCtrlEvent")

    def terminate_job_object(self, job: int, exit_code: int) -> None:
        self._check(self._k32.TerminateJobObject(ctypes.c_void_p(job), exit_code), "TerminateJobObject")

    def close_handle(self, handle: int) -> None:
        self._check(self._k32.CloseHandle(ctypes.c_void_p(handle)), "CloseHandle")


def taskkill_argv(pid: int) -> list[str]:
    """The command that kills `pid` and its whole tree when we hold no Job Object (adopted)."""
    return ["taskkill", "/T", "/F", "/PID", str(pid)]


def _run_command(argv: list[str]) -> int:
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False,
        creationflags=CREATE_NO_WINDOW,
    ).returncode


class WindowsOps:
    """The Windows stop/spawn sequence, with the Win32 API and command runner injected."""

    def __init__(self, api: Win32Api, run: Callable[[list[str]], int] = _run_command) -> None:
        self.api = api
        self.run = run

    def popen_kwargs(self) -> dict[str, Any]:
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}

    def after_spawn(self, child: ChildProcess) -> None:
        """Put the freshly spawned child into a new kill-on-close Job Object."""
        job = self.api.create_job_object()
        try:
            self.api.set_kill_on_job_close(job)
            process = self.api.open_process(PROCESS_SET_QUOTA | PROCESS_TERMINATE, child.pid)
            try:
                self.api.assign_process_to_job_object(job, process)
            finally:
                self.api.close_handle(process)
        except OSError:
            self.api.close_handle(job)
            raise
        child.job_handle = job

    def terminate_tree(self, child: ChildProcess) -> bool:
        """Send CTRL_BREAK to the child's process group; False when it could not be delivered."""
        if process_state(child.pid, child.create_time) is not ProcessState.SAME:
            return False
        try:
            self.api.generate_console_ctrl_event(CTRL_BREAK_EVENT, child.pid)
        except OSError as exc:
            logger.info("CTRL_BREAK to pid %d not delivered (%s); stop will terminate", child.pid, exc)
            return False
        return True

    def kill_tree_now(self, child: ChildProcess) -> list[int]:
        """Terminate the whole Job Object (or `taskkill /T /F` an adopted child); return pids."""
        state = process_state(child.pid, child.create_time)
        if child.job_handle is not None:
            self.api.terminate_job_object(child.job_handle, KILLED_EXIT_CODE)
            return [child.pid] if state is ProcessState.SAME else []
        if state is not ProcessState.SAME:
            return []
        self.run(taskkill_argv(child.pid))
        return [child.pid]

    def release(self, child: ChildProcess) -> None:
        """Close the Job Object handle once the tree is gone (closing it kills what is left)."""
        if child.job_handle is not None:
            job, child.job_handle = child.job_handle, None
            self.api.close_handle(job)


_default_ops: WindowsOps | None = None


def _ops() -> WindowsOps:
    global _default_ops
    if _default_ops is None:
        _default_ops = WindowsOps(CtypesWin32Api())
    return _default_ops


def popen_kwargs() -> dict[str, Any]:
    """Extra `subprocess.Popen` arguments: own process group, no console window."""
    return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}


def after_spawn(child: ChildProcess) -> None:
    _ops().after_spawn(child)


def terminate_tree(child: ChildProcess) -> bool:
    return _ops().terminate_tree(child)


def kill_tree_now(child: ChildProcess) -> list[int]:
    return _ops().kill_tree_now(child)


def release(child: ChildProcess) -> None:
    _ops().release(child)
