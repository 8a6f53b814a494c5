"""Learn within ~100 ms that a child exited, without a thread per child where the OS allows.

- Linux: `os.pidfd_open(pid)` becomes readable when the process exits; `loop.add_reader` wakes
  us, then `Popen.wait()` reaps our own child (exit code and signal known). For an adopted
  process (not our child) init reaps it and the code is unknown: `ExitStatus(None, None)`.
- macOS, old kernels, event loops without `add_reader`: poll every `POLL_INTERVAL_S`
  (`Popen.poll()` for our children, create time / zombie status via psutil for adopted ones).
- Windows: one waiter thread per spawned child blocked in `Popen.wait()` (the process handle);
  adopted children are polled.

Several coroutines may wait on the same child at once (the supervisor and a stop); each gets
the same status. Nothing here sends a signal.
"""

from __future__ import annotations

import asyncio
import os

import psutil

from llama_orchestrator._platform import IS_WINDOWS
from llama_orchestrator.engine.child import ChildProcess, ExitStatus
from llama_orchestrator.engine.identity import ProcessState, process_state

POLL_INTERVAL_S = 0.05
UNKNOWN_EXIT = ExitStatus(code=None, signal=None)

__all__ = ["POLL_INTERVAL_S", "exit_status_now", "wait_exit"]


def exit_status_now(child: ChildProcess) -> ExitStatus | None:
    """Return the exit status if the child has exited (reaping our own child), else None."""
    if child.popen is not None:
        returncode = child.popen.poll()
        return None if returncode is None else ExitStatus.from_returncode(returncode)
    if process_state(child.pid, child.create_time) is not ProcessState.SAME:
        return UNKNOWN_EXIT
    try:
        if psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE:
            return UNKNOWN_EXIT
    except psutil.NoSuchProcess:
        return UNKNOWN_EXIT
    return None


async def wait_exit(child: ChildProcess) -> ExitStatus:
    """Wait until `child` exits and return how; reaps it when it is our own child.

    Blocks until exit (wrap in `asyncio.wait_for` for a deadline); cancellation is safe.
    """
    done = exit_status_now(child)
    if done is not None:
        return done
    if IS_WINDOWS and child.popen is not None:
        returncode = await asyncio.to_thread(child.popen.wait)
        return ExitStatus.from_returncode(returncode)
    if not await _wait_pidfd(child):
        await _poll(child)
    return _reap(child)


async def _wait_pidfd(child: ChildProcess) -> bool:
    """Wait on a pidfd; False when pidfds or `add_reader` are unavailable (caller polls)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return False
    try:
        fd: int = pidfd_open(child.pid)
    except ProcessLookupError:
        return True  # gone (and already reaped by someone)
    except OSError:
        return False  # ENOSYS/EPERM (seccomp, old kernel)
    try:
        # The pid may have been reused between the record and pidfd_open: check after opening,
        # since the pidfd now pins whichever process it names.
        if child.popen is None and process_state(child.pid, child.create_time) is not ProcessState.SAME:
            return True
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            if not exited.done():
                exited.set_result(None)

        try:
            loop.add_reader(fd, on_readable)
        except NotImplementedError:  # e.g. a proactor loop
            return False
        try:
            await exited
        finally:
            loop.remove_reader(fd)
    finally:
        os.close(fd)
    return True


async def _poll(child: ChildProcess) -> None:
    while exit_status_now(child) is None:
        await asyncio.sleep(POLL_INTERVAL_S)


def _reap(child: ChildProcess) -> ExitStatus:
    if child.popen is None:
        return UNKNOWN_EXIT
    # The process has exited, so this wait returns at once; it reaps the zombie.
    return ExitStatus.from_returncode(child.popen.wait())
