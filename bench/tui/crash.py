"""Crash → table latency: how long after `kill -9` a llama-server's row in the dashboard shows it.

A real daemon (tests/tui/realfleet.py) runs N fake llama-servers, all ready and shown in a headless
dashboard. Each is killed once (the daemon restarts a first crash at once, so the state may be
"starting" only briefly: the restart count going up is the durable sign, and either counts). The
table is polled every 5 ms, so the figure's resolution is about that. The daemon's own transition
event says when it noticed, which splits the latency into the daemon's share and the dashboard's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.tui.realfleet import RealFleet

from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.tui.app import DashboardApp

POLL_S = 0.005
GIVE_UP_S = 30.0


def _cell(app: DashboardApp, name: str, label: str) -> str | None:
    labels = [c.label for c in app.query_one("#fleet").shown]  # type: ignore[attr-defined]
    row = next((r for r in app.table_text() if r[0] == name), None)
    return row[labels.index(label)] if row is not None and label in labels else None


async def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        await asyncio.sleep(POLL_S)


async def measure_crash_latency(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-tui-") as tmp:
        fleet = RealFleet(Path(tmp) / "home")
        try:
            names = [f"crash-{i}" for i in range(count)]
            for name in names:
                fleet.add(name)
            client = fleet.start()
            table_ms, event_ms = await _crash_each(fleet, client, names)
        finally:
            fleet.close()
    return {
        "crash_to_table_ms_median": statistics.median(table_ms), "crash_to_table_ms_max": max(table_ms),
        "crash_to_event_ms_median": statistics.median(event_ms), "crash_to_event_ms_max": max(event_ms),
        "crash_samples": float(len(table_ms)),
    }


async def _crash_each(fleet: RealFleet, client: DaemonClient, names: list[str]) -> tuple[list[float], list[float]]:
    app = DashboardApp(lambda: DaemonClient.connect(fleet.paths))
    table_ms: list[float] = []
    event_ms: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(lambda: all(_cell(app, n, "STATE") == "ready" for n in names), "every row ready")
        for name in names:
            before = fleet.status(name)
            assert before.pid is not None
            restarts = str(before.restarts)
            await pilot.pause(0.3)  # untimed: the dashboard idle between samples

            def shows_crash(name: str = name, restarts: str = restarts) -> bool:
                return _cell(app, name, "STATE") != "ready" or _cell(app, name, "RST") != restarts

            killed_at, t0 = time.time(), time.perf_counter()
            os.kill(before.pid, signal.SIGKILL)
            await _until(shows_crash, f"{name}'s crash in the table")
            table_ms.append((time.perf_counter() - t0) * 1000)
            stream = client.events(name, tail=10)
            try:
                noticed = [e.at for e in stream if e.at >= killed_at]
            finally:
                stream.close()
            if noticed:
                event_ms.append((min(noticed) - killed_at) * 1000)
            await _until(lambda name=name: _cell(app, name, "STATE") == "ready", f"{name} back to ready")
        await pilot.press("q")
    return table_ms, event_ms
