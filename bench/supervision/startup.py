"""B1 (M1): `up` → ready on the real llama-server with the tiny model, against a bare start.

Three arms, interleaved round by round (the order rotates each round, page cache warm):
- bare: the exact argv of `llama-orch config render NAME --json`, spawned here, `/health` polled
  every 10 ms until 200 (the best a hand-written script can see);
- cli: wall clock of `llama-orch up NAME` with the daemon already running (includes the CLI's
  Python start-up, the control request and the daemon's own wait);
- api: an `up` request sent from this process, until the `ready` transition arrives on the
  events stream (the daemon's path alone, no CLI start-up).
For the cli arm the daemon's recorded `starting` → `ready` interval is kept too (spawn to ready
as the daemon saw it). Between arms the instance is brought down and its port checked free.
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

from bench.supervision.events import EventRecorder, to_state
from bench.supervision.fixtures import Daemon, Processes, spawned, wait_port_free
from bench.supervision.report import Report, Row, median, p90, summary

NAME = "cold"
HEALTH_POLL_S = 0.01
TARGET_MS = 300.0


def _bare_ready(argv: list[str], port: int, log: Path, processes: Processes, timeout_s: float = 30.0) -> float:
    start = time.monotonic()
    with spawned(argv, log, processes) as proc:
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"bare llama-server exited with {proc.returncode}; see {log}")
            if _health_ok(port):
                elapsed = time.monotonic() - start
                break
            time.sleep(HEALTH_POLL_S)
        else:
            raise RuntimeError("bare llama-server never answered /health with 200")
    wait_port_free(port)
    return elapsed


def _health_ok(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _down(daemon: Daemon, port: int) -> None:
    daemon.client.act("down", [NAME], wait_s=30)
    wait_port_free(port)


def run(report: Report, daemon: Daemon, port: int, rounds: int, workdir: Path, processes: Processes) -> None:
    rendered = json.loads(daemon.cli("config", "render", NAME, "--json").stdout)
    argv: list[str] = rendered["argv"]
    recorder = EventRecorder(daemon.client)
    samples: dict[str, list[float]] = {"bare": [], "cli": [], "cli_daemon_spawn_to_ready": [], "api": []}

    def bare() -> None:
        samples["bare"].append(_bare_ready(argv, port, workdir / "bare.log", processes))

    def cli() -> None:
        mark = recorder.mark()
        start = time.monotonic()
        daemon.cli("up", NAME)
        samples["cli"].append(time.monotonic() - start)
        starting, after = recorder.wait_for(to_state(NAME, "starting"), mark, 10)
        ready, _ = recorder.wait_for(to_state(NAME, "ready"), after, 10)
        samples["cli_daemon_spawn_to_ready"].append(ready.event.at - starting.event.at)
        daemon.track_children()
        _down(daemon, port)

    def api() -> None:
        mark = recorder.mark()
        start = time.monotonic()
        daemon.client.act("up", [NAME])
        ready, _ = recorder.wait_for(to_state(NAME, "ready"), mark, 30)
        samples["api"].append(ready.seen - start)
        daemon.track_children()
        _down(daemon, port)

    arms = [bare, cli, api]
    bare()  # warm-up: page cache and first-run costs, not counted
    samples["bare"].clear()
    for i in range(rounds):
        for arm in arms[i % 3:] + arms[:i % 3]:
            arm()
        print(f"  round {i + 1}/{rounds}: bare {samples['bare'][-1] * 1000:.0f} ms, "
              f"cli {samples['cli'][-1] * 1000:.0f} ms, api {samples['api'][-1] * 1000:.0f} ms", flush=True)

    ms = {k: [v * 1000 for v in vals] for k, vals in samples.items()}
    report.raw["startup_ms"] = {k: {"samples": v, **summary(v)} for k, v in ms.items()}
    bare_med, bare_p90 = median(ms["bare"]), p90(ms["bare"])
    for key, label in (("cli", "`llama-orch up` wall, daemon running"),
                       ("api", "up request → ready event (API)"),
                       ("cli_daemon_spawn_to_ready", "daemon-recorded starting → ready")):
        med, tail = median(ms[key]), p90(ms[key])
        diff = med - bare_med
        report.add(Row(
            id="B1", metric=f"{label}, median", measured=med, unit="ms", baseline=bare_med,
            baseline_label="bare, 10 ms poll", vs_baseline=f"{diff:+.0f} ms",
            target=f"≤ bare + {TARGET_MS:.0f} ms", ok=diff <= TARGET_MS,
        ))
        report.add(Row(
            id="B1", metric=f"{label}, p90", measured=tail, unit="ms", baseline=bare_p90,
            baseline_label="bare p90", vs_baseline=f"{tail - bare_p90:+.0f} ms",
            target=f"≤ bare + {TARGET_MS:.0f} ms", ok=tail - bare_p90 <= TARGET_MS,
        ))
