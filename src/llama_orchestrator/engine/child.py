"""The records the engine hands out about one child process (data only, no OS calls).

`ChildProcess` is what the daemon persists to re-adopt a child after a crash: pid, the
process's create time (PID reuse), the boot id (a pid from before a reboot means nothing) and
the random token placed in the child's environment. `ExitStatus` and `StopOutcome` describe how
a child ended. Kept apart from `spawn` so `identity` can build adopted children without a cycle.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

ENV_INSTANCE = "LLAMA_ORCH_INSTANCE"
ENV_CHILD_TOKEN = "LLAMA_ORCH_CHILD_TOKEN"


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """What proves a pid is still the process we started: pid + create time + boot + token."""

    pid: int
    create_time: float
    boot_id: str
    token: str


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended: `code` for a normal exit, `signal` when a POSIX signal killed it.

    Both are None when the process was not our child (adopted), so nobody told us.
    """

    code: int | None
    signal: int | None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """Translate a `Popen.returncode` (negative means killed by that signal on POSIX)."""
        if returncode < 0:
            return cls(code=None, signal=-returncode)
        return cls(code=returncode, signal=None)

    def describe(self) -> str:
        """The status alone (`exit code 1`); callers say it exited: `exited (exit code 1)`."""
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        if self.code is not None:
            return f"exit code {self.code}"
        return "exit code unknown: adopted from an earlier daemon"

    def after(self, what: str) -> str:
        """`what` ended the process (`stopped gracefully`), then how it exited, as one phrase."""
        if self.signal is None and self.code is None:
            return f"{what} ({self.describe()})"
        return f"{what}, {self.describe()}"


@dataclass(frozen=True, slots=True)
class StopOutcome:
    """Result of stopping a tree: did the main process exit on its own within the grace period,
    how it exited, and every pid we had to SIGKILL / terminate (group members, token holders)."""

    graceful: bool
    exit: ExitStatus
    killed_pids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class ChildProcess:
    """One llama-server (or test child) the engine started or adopted.

    `popen` is set only when this daemon spawned the process (so it can reap it and learn the
    exit code); adopted children have `popen=None`. `job_handle` is the Windows Job Object
    holding the tree (None elsewhere, and for adopted children).
    """

    instance: str
    pid: int
    create_time: float
    boot_id: str
    token: str
    popen: subprocess.Popen[bytes] | None = None
    job_handle: int | None = None

    @property
    def identity(self) -> ProcessIdentity:
        return ProcessIdentity(self.pid, self.create_time, self.boot_id, self.token)

    @property
    def is_ours(self) -> bool:
        """True when we are the parent (we can reap it and read its exit code)."""
        return self.popen is not None
