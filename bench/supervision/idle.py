"""B6 (M7): what an idle daemon costs — RSS with no instances, CPU with 10 idle instances.

RSS is sampled for a few seconds after the daemon settles (max reported, USS kept in the JSON)
next to a baseline measured in the same run: a bare Python process that imports what the daemon
imports (aiohttp, pydantic, psutil, sqlite3) and serves one aiohttp route. CPU is the daemon's
own user+system time over the window (threads included, children not) divided by wall time,
with 10 fake instances at the default `health.interval_s` (10 s: two probes each per 20 s).
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from bench.supervision.fixtures import Daemon, Processes, cpu_over, instance_config, write_instance
from bench.supervision.report import Report, Row

RSS_TARGET_MIB = 60.0
CPU_TARGET_PCT = 1.0
BASELINE_SNIPPET = """
import asyncio, sqlite3, psutil, pydantic, aiohttp
from aiohttp import web
async def main():
    app = web.Application(); app.router.add_get('/', lambda r: web.Response(text='ok'))
    runner = web.AppRunner(app); await runner.setup()
    await web.TCPSite(runner, '127.0.0.1', 0).start()
    print('ready', flush=True); await asyncio.sleep(3600)
asyncio.run(main())
"""


def _rss_mib(proc: psutil.Process, seconds: float) -> tuple[float, float]:
    """(max RSS, max USS) in MiB over `seconds`, sampled every 0.25 s."""
    rss = uss = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        info = proc.memory_full_info()
        rss, uss = max(rss, info.rss / 2**20), max(uss, info.uss / 2**20)
        time.sleep(0.25)
    return rss, uss


def _baseline_rss(processes: Processes) -> float:
    proc = subprocess.Popen([sys.executable, "-c", BASELINE_SNIPPET], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    processes.track(proc.pid)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return _rss_mib(psutil.Process(proc.pid), 1.0)[0]
    finally:
        proc.kill()
        proc.wait()


def run(report: Report, daemon: Daemon, fake: str, model: str, base_port: int, n: int, window_s: float) -> None:
    processes = daemon.processes
    time.sleep(1.0)  # let start-up garbage settle
    rss, uss = _rss_mib(daemon.process(), 3.0)
    baseline = _baseline_rss(processes)
    report.raw["idle_rss_mib"] = {"daemon_rss": rss, "daemon_uss": uss, "baseline_python_aiohttp_rss": baseline}
    report.add(Row(id="B6", metric="idle daemon RSS, no instances", measured=rss, unit="MiB", baseline=baseline,
                   baseline_label="python+aiohttp server", vs_baseline=f"{rss / baseline:.2f}x",
                   target=f"≤ {RSS_TARGET_MIB:.0f} MiB", ok=rss <= RSS_TARGET_MIB, note=f"USS {uss:.1f} MiB"))

    names = [f"idle{i:02d}" for i in range(n)]
    for i, name in enumerate(names):
        write_instance(daemon.paths, instance_config(name, binary=fake, model=model, port=base_port + i))
    daemon.client.act("up", names, wait_s=60)
    daemon.track_children()
    not_ready = [s.name for s in daemon.client.instances() if s.state != "ready"]
    if not_ready:
        report.notes.append(f"idle: not ready: {not_ready}")
    time.sleep(2.0)
    proc = daemon.process()
    cpu_s, elapsed = cpu_over(proc, window_s)
    pct = cpu_s / elapsed * 100
    rss_n = proc.memory_info().rss / 2**20
    report.raw["idle_cpu"] = {"instances": n, "window_s": elapsed, "cpu_s": cpu_s, "percent_core": pct,
                              "rss_mib": rss_n, "interval_s": 10.0}
    report.add(Row(id="B6", metric=f"idle daemon CPU, {n} instances (interval_s=10)", measured=pct, unit="%core",
                   target=f"≤ {CPU_TARGET_PCT:g} % of a core", ok=pct <= CPU_TARGET_PCT,
                   note=f"over {elapsed:.0f} s; default health.interval_s=10; RSS at N={n}: {rss_n:.1f} MiB "
                        f"({(rss_n - rss) / n:+.2f} MiB per instance)"))
    daemon.client.act("down", names, wait_s=60)
