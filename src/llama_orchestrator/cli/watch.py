"""`llama-orch ps --watch`: a light, non-interactive live table for scripts and small terminals.

Redraws when the daemon streams a transition, and once a second for uptime and resources.
"""

from __future__ import annotations

import threading

from rich.live import Live

from llama_orchestrator.cli import _console
from llama_orchestrator.daemon.client import DaemonClient

REFRESH_S = 1.0


def watch_table(client: DaemonClient, *, show_all: bool) -> None:
    from llama_orchestrator.cli.lifecycle import instance_table

    changed = threading.Event()

    def listen() -> None:
        try:
            for _ in client.events(after_id=-1, follow=True):
                changed.set()
        except OSError:
            return

    threading.Thread(target=listen, daemon=True).start()

    def render() -> object:
        rows = [s for s in client.instances() if show_all or s.state != "stopped"]
        return instance_table(rows)

    try:
        with Live(render(), console=_console.out, auto_refresh=False) as live:  # type: ignore[arg-type]
            while True:
                changed.wait(REFRESH_S)
                changed.clear()
                live.update(render(), refresh=True)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return
