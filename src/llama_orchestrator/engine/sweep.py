"""Find and kill every process that carries one child's token in its environment.

A forked grandchild that called `setsid()` (or was started in its own group) escapes the
process-group kill; it still inherited `LLAMA_ORCH_CHILD_TOKEN`, so we find it by reading
environments (reliability.md scenario 7: "no process left with the instance marker").
Processes whose environment we cannot read (other users, kernel threads) are skipped: they
cannot have inherited our token without being our descendants, and descendants are ours to read.
"""

from __future__ import annotations

import logging
import os
import time

import psutil

from llama_orchestrator.engine.identity import read_token

logger = logging.getLogger(__name__)

__all__ = ["kill_token_holders", "token_holders"]


def token_holders(token: str) -> list[psutil.Process]:
    """Return live processes (not zombies, not us) whose environment carries `token`."""
    me = os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        if read_token(proc) == token:
            found.append(proc)
    return found


def kill_token_holders(token: str, *, wait_s: float = 1.0) -> list[int]:
    """SIGKILL (TerminateProcess on Windows) every holder of `token`; return their pids.

    Blocks up to `wait_s` for them to disappear (they are not our children, so their parent
    or init reaps them). psutil re-checks each process's create time before signalling, so a
    pid reused since the scan is never hit.
    """
    if not token:
        return []
    killed: list[psutil.Process] = []
    for proc in token_holders(token):
        try:
            proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        killed.append(proc)
    alive = _wait_dead(killed, wait_s)
    for proc in alive:
        logger.warning("process %d carrying a child token survived SIGKILL", proc.pid)
    return [p.pid for p in killed]


def _wait_dead(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until each process is gone or a zombie (dead, waiting for a parent that is not us
    to reap it: psutil.wait_procs would count it as alive); return the ones still running."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in procs if _is_running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.01)


def _is_running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
