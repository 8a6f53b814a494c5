"""Processes started by tests: spawning servers, ending them, and the leak guard.

Every process a test run starts carries ``LLAMA_ORCH_TEST_RUN=<uuid>`` in its environment
(tests/conftest.py exports it, so it is inherited by daemons, servers and their grandchildren).
After each test the leak guard scans every process's environment for that marker, SIGKILLs
the survivors and fails the test naming them. Processes are ended by PID or by the process
group of a process we started, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil

MARKER_ENV = "LLAMA_ORCH_TEST_RUN"


def marked_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Return ``base`` (default: os.environ) plus ``extra``, carrying this run's marker."""
    env = dict(os.environ if base is None else base)
    env.update(extra)
    marker = os.environ.get(MARKER_ENV)
    if marker and MARKER_ENV not in env:
        env[MARKER_ENV] = marker
    return env


def _own_lineage() -> set[int]:
    pids = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids.update(p.pid for p in psutil.Process().parents())
    return pids


def find_marked(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``MARKER_ENV=marker``."""
    found = []
    skip = _own_lineage()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid in skip:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(MARKER_ENV) == marker:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} {' '.join(proc.cmdline())[:200]!r}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


def reap_leaks(marker: str, grace_s: float = 1.0) -> list[str]:
    """SIGKILL marked survivors (after ``grace_s`` for ones already dying); return their descriptions.

    The grace period lets a process that teardown has just signalled finish exiting; it does
    not hide leaks: anything still alive afterwards is killed and reported.
    """
    deadline = time.monotonic() + grace_s
    survivors = find_marked(marker)
    while survivors and time.monotonic() < deadline:
        time.sleep(0.02)
        survivors = find_marked(marker)
    names = [describe(p) for p in survivors]
    for proc in survivors:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(survivors, timeout=5)
    return names


Command = Sequence[str | os.PathLike[str]]


def spawn_server(cmd: Command, env: Mapping[str, str] | None, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session (so its process group can be killed) with output in ``log_path``.

    ``env`` is completed with the run marker; ``None`` means the current environment.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [os.fspath(c) for c in cmd],
            env=marked_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int | None:
    """SIGKILL ``proc``'s process group (it leads its own session) and reap it; return its exit code."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None


@contextlib.contextmanager
def running(cmd: Command, env: Mapping[str, str] | None, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``spawn_server`` whose process group is always killed and reaped on exit, even on failure."""
    proc = spawn_server(cmd, env, log_path)
    try:
        yield proc
    finally:
        kill_group(proc)
