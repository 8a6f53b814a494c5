"""`llama-orch ps --watch`: a light, non-interactive live table for scripts and small terminals.

Redraws when the daemon streams a transition (one long `events` request, read on a daemon
thread) and otherwise once a second, with ONE `status()` request per redraw for the header and
every row. No Textual, no input handling: Ctrl+C ends it. Not on a terminal, each refresh is
printed as plain lines instead. When the daemon goes away it says so and exits with the daemon's
exit code.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator

from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from llama_orchestrator.cli import _console
from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.daemon.protocol import DaemonStatus
from llama_orchestrator.errors import DaemonNotRunningError, OrchestratorError

REFRESH_S = 1.0


def watch_table(client: DaemonClient, *, show_all: bool) -> None:
    changed = threading.Event()
    gone = threading.Event()

    def listen() -> None:
        try:
            for _ in client.events(after_id=-1, follow=True):
                changed.set()
        except (OSError, ValueError, http.client.HTTPException, OrchestratorError):
            pass
        gone.set()  # the stream ends only when the daemon stops (or the connection breaks)
        changed.set()

    threading.Thread(target=listen, name="ps-watch-events", daemon=True).start()
    refreshes = _refreshes(client, changed, gone)
    out = _console.out
    try:
        if not out.is_terminal:
            # A pipe or a file (`ps -w | head`, `> f.txt`): no live view, which would write only
            # when it stops; each refresh as whole lines, flushed, like `docker stats`. A closed
            # pipe ends the command (the CLI's BrokenPipeError handler).
            for status in refreshes:
                out.print(render(status, show_all))
                out.print()
                out.file.flush()
            return
        with Live(render(next(refreshes), show_all), console=out, auto_refresh=False) as live:
            for status in refreshes:
                live.update(render(status, show_all), refresh=True)
    except KeyboardInterrupt:
        return


def _refreshes(client: DaemonClient, changed: threading.Event, gone: threading.Event) -> Iterator[DaemonStatus]:
    """The daemon's status now, then again after each transition or REFRESH_S, until it stops."""
    yield client.status()
    while True:
        changed.wait(REFRESH_S)
        changed.clear()
        try:
            yield client.status()
        except OrchestratorError:
            if gone.is_set():
                raise DaemonNotRunningError("the daemon stopped") from None
            raise


def render(status: DaemonStatus, show_all: bool) -> RenderableType:
    from llama_orchestrator.cli.listing import instance_table

    rows = [s for s in status.instances if show_all or s.state != "stopped"]
    gateway = status.gateway.summary()
    ready = sum(1 for s in status.instances if s.state == "ready")
    header = Text(
        f"{time.strftime('%H:%M:%S')}  daemon pid {status.pid}  gateway {gateway}  "
        f"ready {ready}/{len(status.instances)}  host cpu {_percent(status.host_cpu_percent)} "
        f"mem {_percent(status.host_memory_percent)}",
        no_wrap=True, overflow="ellipsis",
    )
    parts: list[RenderableType] = [header, instance_table(rows)]
    hidden = len(status.instances) - len(rows)
    if hidden:
        parts.append(Text(f"{hidden} stopped instance(s) hidden; -a shows them", style="dim"))
    return Group(*parts)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
