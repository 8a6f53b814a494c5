"""Signals → a callback on the event loop (uvicorn's capture_signals, without the re-raise).

The first SIGINT/SIGTERM asks for a graceful shutdown; a second one is forced (every child is
killed at once). Handlers only call back into the loop; the real work happens there.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llama_orchestrator._platform import IS_WINDOWS


@contextmanager
def capture_signals(on_signal: Callable[[bool], None]) -> Iterator[None]:
    """Install handlers for SIGINT/SIGTERM (SIGBREAK on Windows) and restore the old ones on exit."""
    loop = asyncio.get_running_loop()
    seen = 0

    def handle(*_: object) -> None:
        nonlocal seen
        seen += 1
        loop.call_soon_threadsafe(on_signal, seen > 1)

    wanted = [signal.SIGINT, signal.SIGTERM]
    if IS_WINDOWS:
        wanted.append(signal.SIGBREAK)  # type: ignore[attr-defined,unused-ignore]
    previous = {}
    installed = []
    for sig in wanted:
        try:
            if IS_WINDOWS:
                previous[sig] = signal.signal(sig, handle)
            else:
                loop.add_signal_handler(sig, handle)
            installed.append(sig)
        except (ValueError, RuntimeError, NotImplementedError):
            continue  # not the main thread (e.g. the Windows service host): stop comes another way
    try:
        yield
    finally:
        for sig in installed:  # only these: uvloop refuses any removal outside the main thread
            if IS_WINDOWS:
                signal.signal(sig, previous[sig])
            else:
                loop.remove_signal_handler(sig)
