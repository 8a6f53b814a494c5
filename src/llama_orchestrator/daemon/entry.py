"""The daemon's foreground entry point and its own log: what `llama-orch daemon run`, systemd,
launchd, Task Scheduler and the Windows service host call (`autostart.windows_service` names it
by its dotted path)."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import threading

from llama_orchestrator import eventloop
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.service import Daemon


def configure_logging(paths: HomePaths, *, to_stderr: bool = True) -> list[logging.Handler]:
    """Daemon log to `<home>/logs/daemon.log` (rotated) and stderr; never a traceback per record on a full disk."""
    logging.raiseExceptions = False
    root = logging.getLogger()
    root.setLevel(os.environ.get("LLAMA_ORCH_LOG_LEVEL", "INFO").upper())
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = logging.handlers.RotatingFileHandler(
        paths.daemon_log, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    file_handler.setFormatter(formatter)
    handlers: list[logging.Handler] = [file_handler]
    if to_stderr:
        stream = logging.StreamHandler()
        stream.setFormatter(formatter)
        handlers.append(stream)
    for handler in handlers:
        root.addHandler(handler)
    return handlers


def run_daemon(paths: HomePaths, stop_event: threading.Event | None = None, *, autostart: bool = True) -> int:
    """Foreground entry point (`llama-orch daemon run`, systemd, launchd, Task Scheduler, the Windows service).

    Blocks until a signal, `llama-orch daemon stop`, or `stop_event` being set from another thread
    (the Windows service's SvcStop); returns the exit code once every instance is handled.
    """
    paths.ensure()
    handlers = configure_logging(paths)

    async def main() -> int:
        daemon = Daemon(paths, autostart=autostart)
        relay: asyncio.Future[bool] | None = None
        if stop_event is not None:
            loop = asyncio.get_running_loop()
            relay = loop.run_in_executor(None, stop_event.wait)
            relay.add_done_callback(lambda _: daemon.request_shutdown(keep_instances=False))
        try:
            return await daemon.serve()
        finally:
            if stop_event is not None:
                stop_event.set()  # release the waiting thread

    try:
        return eventloop.run(main())
    finally:
        # The Windows service host (and tests) call this in-process: leave the logging as found.
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
