"""Stop a child and its whole tree within a bounded time, graceful first when possible.

POSIX: SIGTERM + SIGCONT to the group, wait `grace_s` for the main process, SIGKILL the
group, then SIGKILL any process still carrying the child's token (a grandchild that escaped
the group with setsid), then reap. Windows: CTRL_BREAK to the group, wait, TerminateJobObject.
Output goes to files, never pipes, so a grandchild holding the log open cannot make a stop
hang (llama-swap #804). `stop_tree` returns within `grace_s + KILL_WAIT_S` plus the token scan.
"""

from __future__ import annotations

import asyncio
import logging

from llama_orchestrator.engine import platform_ops
from llama_orchestrator.engine.child import ChildProcess, ExitStatus, StopOutcome
from llama_orchestrator.engine.exitwatch import UNKNOWN_EXIT, wait_exit
from llama_orchestrator.engine.sweep import kill_token_holders

logger = logging.getLogger(__name__)

KILL_WAIT_S = 1.0
TOKEN_SWEEP_WAIT_S = 0.5
UNDELIVERED_WAIT_S = 0.05

__all__ = ["KILL_WAIT_S", "kill_tree", "stop_tree"]


async def stop_tree(child: ChildProcess, grace_s: float) -> StopOutcome:
    """Stop `child` gracefully, escalating to a kill after `grace_s`; reap it; kill leftovers.

    `graceful` is True when the main process exited without being killed. Grandchildren left
    behind are killed either way and listed in `killed_pids`. Never raises for a child that is
    already gone, and never signals a pid whose create time no longer matches.
    """
    delivered = platform_ops.terminate_tree(child)
    wait_s = grace_s if delivered else UNDELIVERED_WAIT_S
    status: ExitStatus | None
    try:
        status = await asyncio.wait_for(wait_exit(child), timeout=wait_s)
    except TimeoutError:
        status = None
    graceful = status is not None
    if status is None:
        logger.info(
            "%s: pid %d still running after %.1f s grace; killing its tree",
            child.instance, child.pid, wait_s, extra={"instance": child.instance},
        )
    killed, status = await _kill_everything(child, status)
    return StopOutcome(graceful=graceful, exit=status, killed_pids=killed)


async def kill_tree(child: ChildProcess) -> StopOutcome:
    """Kill `child` and its tree at once (a llama-server still loading has no SIGTERM handler)."""
    killed, status = await _kill_everything(child, None)
    return StopOutcome(graceful=False, exit=status, killed_pids=killed)


async def _kill_everything(child: ChildProcess, status: ExitStatus | None) -> tuple[list[int], ExitStatus]:
    killed = platform_ops.kill_tree_now(child)
    if status is None:
        try:
            status = await asyncio.wait_for(wait_exit(child), timeout=KILL_WAIT_S)
        except TimeoutError:
            logger.warning("%s: pid %d survived SIGKILL (uninterruptible?)", child.instance, child.pid)
            status = UNKNOWN_EXIT
    swept = await asyncio.to_thread(kill_token_holders, child.token, wait_s=TOKEN_SWEEP_WAIT_S)
    platform_ops.release(child)
    merged = list(dict.fromkeys([*killed, *swept]))
    return merged, status
