"""The daemon's foreground entry point and its own log: what `llama-orch daemon run`, systemd,
launchd, Task Scheduler and the Windows service host call (`autostart.windows_service` names it
by its dotted path)."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import sys
import threading
from io import TextIOWrapper

from llama_orchestrator import eventloop, scheduling
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.service import Daemon
from llama_orchestrator.engine import open_private


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose file is created (or reopened) with mode 0600 on POSIX.

    `_open` is what the handler calls for the first record and again after each rollover; the
    rollover renames the file to `.1`, `.2`..., which keeps the mode, so every rotation stays
    0600 too. A file left 0644 by an older version is tightened when it is opened. Windows has no
    POSIX modes: the file is opened as the stdlib does.
    """

    def _open(self) -> TextIOWrapper:
        if sys.platform == "win32":
            return super()._open()
        fd = open_private(self.baseFilename, append=True)  # rotating handlers always append
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def configure_logging(paths: HomePaths, *, to_stderr: bool = True) -> list[logging.Handler]:
    """Daemon log to `<home>/logs/daemon.log` (rotated, 0600) and, with `to_stderr`, to stderr too.

    `to_stderr` is for a terminal and for systemd (journald keeps stderr). A daemon whose
    stderr is a plain file (`daemon start`'s `daemon.out`, launchd's err log) turns it off, or
    that file would copy the whole log and never be rotated. With no stderr at all (pythonw,
    the Windows service) there is no stderr handler either. Never a traceback per record on a
    full disk.
    """
    logging.raiseExceptions = False
    root = logging.getLogger()
    root.setLevel(os.environ.get("LLAMA_ORCH_LOG_LEVEL", "INFO").upper())
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = PrivateRotatingFileHandler(
        paths.daemon_log, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
    )
    file_handler.setFormatter(formatter)
    handlers: list[logging.Handler] = [file_handler]
    if to_stderr and sys.stderr is not None:
        stream = logging.StreamHandler()
        stream.setFormatter(formatter)
        handlers.append(stream)
    for handler in handlers:
        root.addHandler(handler)
    return handlers


def run_daemon(
    paths: HomePaths,
    stop_event: threading.Event | None = None,
    *,
    autostart: bool = True,
    log_to_stderr: bool = True,
) -> int:
    """Foreground entry point (`llama-orch daemon run`, systemd, launchd, Task Scheduler, the Windows service).

    Blocks until a signal, `llama-orch daemon stop`, or `stop_event` being set from another thread
    (the Windows service's SvcStop); returns the exit code once every instance is handled.
    `log_to_stderr=False` keeps the log out of stderr (see `configure_logging`).
    """
    paths.ensure()
    handlers = configure_logging(paths, to_stderr=log_to_stderr)

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
        with scheduling.batch():
            return eventloop.run(main())
    finally:
        # The Windows service host (and tests) call this in-process: leave the logging as found.
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
