"""Dashboard benchmark: 100 fake instances from a FakeDaemonClient, headless Textual; and the
crash → table latency against a real daemon running fake llama-servers.

    .venv/bin/python -m bench.tui [--idle-seconds 10] [--rounds 30] [--crashes 5] [--skip-crash]

Figures (targets from issue 5):
  refresh_ms    one refresh as the app does it: a new `status()` with every row's uptime, CPU and
                RSS changed is applied to the table, the messages that causes are handled, and the
                screen's next frame is composed and written (the part that changed) — wall time,
                median and max over --rounds; ≤ 50 ms. refresh_cpu_ms: the same in process CPU.
  full_repaint_ms   the same refresh, then the whole screen composed from scratch (what a resize
                or a newly shown screen costs)
  rebuild_ms    the row set changes (a filter typed: 10 rows, then 100 again), table rebuilt
  idle_cpu_pct  process CPU (all threads: UI, event feed, status poller, log tail) over
                --idle-seconds while the app sits refreshing once a second, every row's
                figures moving each time (the worst case), as % of one core; ≤ 5 %
  idle_cpu_pct_static_figures   the same with figures unchanged between refreshes
  crash_to_table_ms   a real daemon with --crashes fake llama-servers (ready, shown in the
                dashboard): `kill -9` one, poll the table every 5 ms until its row shows the crash
                (a state other than ready, or the restart count going up); median and max over
                the instances, each killed once; ≤ 1000 ms. crash_to_event_ms: kill → the daemon's
                transition event (its own timestamp), i.e. the daemon's share of that latency.
Baseline measured in the same run: the same idle measurement for a bare Textual app showing
one Static, so a slow machine shows in both numbers. Results: bench/results/tui.json.

No `pilot.pause()` inside a timed section: it sleeps at least 20 ms waiting for the process to
look idle, which would be measured as refresh time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import time
from pathlib import Path

from tests.tui.fakes import FakeDaemonClient, make_status
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from bench.tui.crash import measure_crash_latency
from llama_orchestrator.daemon.protocol import InstanceStatus
from llama_orchestrator.tui.app import DashboardApp

N_INSTANCES = 100
SIZE = (160, 48)
RESULTS = Path(__file__).resolve().parents[1] / "results" / "tui.json"


class TickingFake(FakeDaemonClient):
    """Each status() call moves every uptime and CPU figure, like a live fleet does."""

    def __init__(self, *, moving: bool = True) -> None:
        super().__init__([make_status(i) for i in range(N_INSTANCES)])
        self._tick = itertools.count()
        self.moving = moving

    def status(self):  # type: ignore[no-untyped-def]
        n = next(self._tick)
        if self.moving:
            self.set_statuses([_moved(s, n) for s in self.statuses])
        return super().status()


def _moved(s: InstanceStatus, n: int) -> InstanceStatus:
    return s.model_copy(update={"uptime_s": (s.uptime_s or 0) + 1, "cpu_percent": float((n + s.port) % 9),
                                "rss_bytes": (s.rss_bytes or 0) + 4096})


async def _frame(pilot: Pilot[None]) -> None:
    """Handle the messages a change posted, then compose and write the screen's next frame now
    (instead of at Textual's next frame tick)."""
    await pilot._wait_for_screen()
    pilot.app.screen._on_timer_update()


async def measure_refresh(rounds: int) -> dict[str, float]:
    fake = TickingFake()
    app = DashboardApp(lambda: fake, refresh_s=3600.0)
    refresh: list[float] = []
    refresh_cpu: list[float] = []
    full: list[float] = []
    rebuild: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        while app.query_one("#fleet").row_count < N_INSTANCES:  # type: ignore[attr-defined]
            await pilot.pause(0.05)
        await pilot.pause(0.5)  # the detail pane filled, the first frames drawn
        for _ in range(rounds):
            status = fake.status()
            await pilot.pause()  # untimed: let anything else settle first
            t0, c0 = time.perf_counter(), time.process_time()
            app._apply_status(status)
            await _frame(pilot)
            refresh.append((time.perf_counter() - t0) * 1000)
            refresh_cpu.append((time.process_time() - c0) * 1000)
        for _ in range(rounds):
            status = fake.status()
            await pilot.pause()
            t0 = time.perf_counter()
            app._apply_status(status)
            await _frame(pilot)
            app.screen._compositor.render_update(full=True)
            full.append((time.perf_counter() - t0) * 1000)
        for i in range(rounds // 3):
            await pilot.pause()
            t0 = time.perf_counter()
            app.filter_text = "model-00" if i % 2 == 0 else ""  # 10 rows, then all 100 again
            app._show_rows()
            await _frame(pilot)
            rebuild.append((time.perf_counter() - t0) * 1000)
    return {
        "refresh_ms_median": statistics.median(refresh), "refresh_ms_max": max(refresh),
        "refresh_cpu_ms_median": statistics.median(refresh_cpu),
        "full_repaint_ms_median": statistics.median(full), "full_repaint_ms_max": max(full),
        "rebuild_ms_median": statistics.median(rebuild), "rebuild_ms_max": max(rebuild),
    }


async def measure_idle(app: App[object], seconds: float) -> float:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(1.0)  # connected, first rows drawn
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)  # the thing measured is the app idling: nothing to wait on
        cpu1, wall1 = time.process_time(), time.monotonic()
    return 100.0 * (cpu1 - cpu0) / (wall1 - wall0)


class BareApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("idle")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tui")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--crashes", type=int, default=5, help="fake llama-servers to kill, one sample each")
    parser.add_argument("--skip-crash", action="store_true", help="no real daemon: the in-process figures only")
    args = parser.parse_args()
    figures = asyncio.run(measure_refresh(args.rounds))
    fake = TickingFake()
    figures["idle_cpu_pct"] = asyncio.run(measure_idle(DashboardApp(lambda: fake), args.idle_seconds))
    figures["baseline_bare_textual_idle_cpu_pct"] = asyncio.run(measure_idle(BareApp(), args.idle_seconds))
    figures["status_calls_during_idle"] = sum(1 for name, _ in fake.calls if name == "status")
    quiet = TickingFake(moving=False)  # an idle fleet: no figure changes between refreshes
    figures["idle_cpu_pct_static_figures"] = asyncio.run(measure_idle(DashboardApp(lambda: quiet), args.idle_seconds))
    if not args.skip_crash:
        figures.update(asyncio.run(measure_crash_latency(args.crashes)))
    result = {
        "suite": "tui", "instances": N_INSTANCES, "size": list(SIZE),
        "targets": {"refresh_ms": 50, "idle_cpu_pct": 5, "crash_to_table_ms": 1000},
        "figures": {k: round(v, 2) for k, v in figures.items()},
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result["figures"].items():
        print(f"{key:<40} {value}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
