"""Prove that a recorded pid is still the child we started, without ever signalling it.

A pid stored before a daemon crash (or a reboot) may now belong to anything. We accept it only
when the boot id matches, the process exists, its create time matches what we recorded (PID
reuse), and, when its environment is readable, it carries our per-child token
(reliability.md 0.8-0.9, scenario 11-12). Everything here is read-only: no function sends a
signal, so a stale record can never hurt an unrelated process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

import psutil

from llama_orchestrator.engine.child import ENV_CHILD_TOKEN, ChildProcess, ProcessIdentity

logger = logging.getLogger(__name__)

CREATE_TIME_TOLERANCE_S = 0.01
_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")

__all__ = [
    "AdoptVerdict",
    "ProcessState",
    "adopt",
    "boot_id",
    "check_ours",
    "process_state",
    "read_token",
]


@cache
def boot_id() -> str:
    """Identify this boot: Linux's random boot_id, elsewhere the boot time as a string."""
    try:
        return _BOOT_ID_FILE.read_text(encoding="ascii").strip()
    except OSError:
        return f"{psutil.boot_time():.0f}"


class ProcessState(StrEnum):
    SAME = "same"  # alive (or an unreaped zombie) with the recorded create time
    GONE = "gone"
    REUSED = "pid-reused"


def process_state(pid: int, create_time: float) -> ProcessState:
    """Tell whether `pid` is still the process created at `create_time`.

    Call it right before signalling. A zombie counts as SAME: signalling it is harmless and
    it still holds the pid (and its process group id) so nothing else can have taken them.
    """
    try:
        actual = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return ProcessState.GONE
    except psutil.AccessDenied:  # another user's process: certainly not ours
        return ProcessState.REUSED
    if abs(actual - create_time) > CREATE_TIME_TOLERANCE_S:
        return ProcessState.REUSED
    return ProcessState.SAME


def read_token(proc: psutil.Process) -> str | None:
    """Return the child token in `proc`'s environment, "" when absent, None when unreadable."""
    try:
        environ: dict[str, str] = proc.environ()
        return environ.get(ENV_CHILD_TOKEN, "")
    except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess, OSError):
        return None


def command_line(pid: int) -> list[str] | None:
    """The argv `pid` runs with (an adopted child's, to tell whether its config changed since), or None."""
    try:
        argv: list[str] = psutil.Process(pid).cmdline()
    except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess, OSError):
        return None
    return argv or None


@dataclass(frozen=True, slots=True)
class AdoptVerdict:
    """Whether a recorded child may be adopted, and why (a short kebab-case reason)."""

    adoptable: bool
    reason: str


def check_ours(identity: ProcessIdentity) -> AdoptVerdict:
    """Decide whether `identity` still names our live child. Never sends a signal.

    Reasons: `ours`, `ours-environ-unreadable` (adoptable, token not checkable),
    `other-boot`, `gone` (no such process, or a zombie), `pid-reused`, `token-mismatch`.
    """
    if identity.boot_id != boot_id():
        return AdoptVerdict(False, "other-boot")
    state = process_state(identity.pid, identity.create_time)
    if state is ProcessState.GONE:
        return AdoptVerdict(False, "gone")
    if state is ProcessState.REUSED:
        return AdoptVerdict(False, "pid-reused")
    proc = psutil.Process(identity.pid)
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return AdoptVerdict(False, "gone")
    except psutil.NoSuchProcess:
        return AdoptVerdict(False, "gone")
    token = read_token(proc)
    if token is None:
        return AdoptVerdict(True, "ours-environ-unreadable")
    if token != identity.token:
        return AdoptVerdict(False, "token-mismatch")
    return AdoptVerdict(True, "ours")


def adopt(identity: ProcessIdentity, *, instance: str = "") -> ChildProcess:
    """Wrap a recorded child (checked with `check_ours` first) as a ChildProcess we did not spawn.

    We are not its parent, so its exit code will be unknown (`ExitStatus(None, None)`).
    """
    return ChildProcess(
        instance=instance,
        pid=identity.pid,
        create_time=identity.create_time,
        boot_id=identity.boot_id,
        token=identity.token,
        popen=None,
    )
