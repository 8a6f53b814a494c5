"""POSIX process-tree control: own session per child, signals to the whole process group.

Same function names as `_windows.py`; `platform_ops` picks one. Every signal is sent only
after `process_state` confirms the leader's create time still matches (PID reuse). When the
leader is already gone (reaped), its pid cannot be reused while its process group still has
members, so signalling the group then still only reaches our own descendants.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import psutil

from llama_orchestrator.engine.child import ChildProcess
from llama_orchestrator.engine.identity import ProcessState, process_state

logger = logging.getLogger(__name__)

__all__ = ["after_spawn", "kill_tree_now", "popen_kwargs", "release", "terminate_tree"]


def popen_kwargs() -> dict[str, Any]:
    """Extra `subprocess.Popen` arguments: a new session, so the child leads its own group."""
    return {"start_new_session": True}


def after_spawn(child: ChildProcess) -> None:
    """Nothing to do on POSIX: the new session made at fork time already holds the tree."""


def release(child: ChildProcess) -> None:
    """Nothing to release on POSIX (Windows closes its Job Object handle here)."""


def _group_may_be_ours(child: ChildProcess) -> bool:
    state = process_state(child.pid, child.create_time)
    if state is ProcessState.REUSED:
        logger.warning(
            "not signalling pid %d: it was reused by another process", child.pid,
            extra={"instance": child.instance},
        )
        return False
    return True


def _killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        logger.warning("no permission to signal process group %d", pgid)
        return False
    return True


def terminate_tree(child: ChildProcess) -> bool:
    """Send SIGTERM then SIGCONT to the child's process group; True when the group existed.

    SIGCONT makes a SIGSTOPped child act on the pending SIGTERM (what systemd does).
    """
    if not _group_may_be_ours(child):
        return False
    delivered = _signal_tree(child, signal.SIGTERM)
    if delivered:
        _signal_tree(child, signal.SIGCONT)
    return delivered


def _signal_tree(child: ChildProcess, sig: int) -> bool:
    """Signal the child's group; if it leads none (adopted from elsewhere), the pid alone."""
    if _killpg(child.pid, sig):
        return True
    if process_state(child.pid, child.create_time) is not ProcessState.SAME:
        return False
    try:
        os.kill(child.pid, sig)
    except ProcessLookupError:
        return False
    return True


def group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group `pgid`."""
    members: list[int] = []
    for proc in psutil.process_iter(["status"]):
        if proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def kill_tree_now(child: ChildProcess) -> list[int]:
    """SIGKILL the child's whole process group at once; return the pids that were in it."""
    if not _group_may_be_ours(child):
        return []
    members = group_members(child.pid)
    if _killpg(child.pid, signal.SIGKILL):
        return members
    if _signal_tree(child, signal.SIGKILL):
        return [child.pid]
    return []
