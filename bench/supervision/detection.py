"""B2 (M2, M3): crash and hang detection, time to ready again, and the backoff curve.

- crash: `kill -9` of a ready real llama-server; detection is the time until the `ready → …`
  transition arrives on the events stream (client view) and until the daemon recorded it (its
  own clock; same machine, so wall clocks compare). The instance runs with `reset_after_s = 0`
  so every crash is a "first" crash and the restart is immediate; MTTR is kill → `ready` again.
- hang: `SIGSTOP` of a ready real llama-server with `interval_s` small; time until `unhealthy`,
  reported in poll intervals. The daemon then restarts it (its stop sends SIGCONT first).
- backoff curve: a fake server with a short `backoff_initial_s`, killed each time it is ready;
  the delay the daemon waited before each restart, against the documented curve (0, then
  doubling from `backoff_initial_s`, ×[0.9, 1.1] jitter).
"""

from __future__ import annotations

import os
import random
import signal
import time

from bench.supervision.events import EventRecorder, leaving, to_state
from bench.supervision.fixtures import Daemon
from bench.supervision.report import Report, Row, median, p90, summary

CRASH = "crashy"
HANG = "hangy"
LOOP = "loopy"
HANG_INTERVAL_S = 0.5
HANG_TIMEOUT_S = 0.15  # the same timeout/interval ratio as the defaults (3 s / 10 s)
HANG_THRESHOLD = 3
BACKOFF_INITIAL_S = 0.25


def _ready_pid(daemon: Daemon, name: str) -> int:
    for status in daemon.client.instances():
        if status.name == name and status.state == "ready" and status.pid:
            daemon.processes.track(status.pid)
            return status.pid
    raise RuntimeError(f"{name} is not ready")


def _crash(report: Report, daemon: Daemon, rec: EventRecorder, trials: int) -> None:
    daemon.client.act("up", [CRASH], wait_s=30)
    seen_ms, daemon_ms, mttr_ms, first_hop = [], [], [], []
    for _ in range(trials):
        pid = _ready_pid(daemon, CRASH)
        mark = rec.mark()
        wall, mono = time.time(), time.monotonic()
        os.kill(pid, signal.SIGKILL)
        detected, after = rec.wait_for(leaving(CRASH, "ready"), mark, 10)
        ready, _ = rec.wait_for(to_state(CRASH, "ready"), after, 30)
        seen_ms.append((detected.seen - mono) * 1000)
        daemon_ms.append((detected.event.at - wall) * 1000)
        mttr_ms.append((ready.seen - mono) * 1000)
        first_hop.append(detected.event.to_state)
    report.raw["crash"] = {"client_seen_ms": summary(seen_ms) | {"samples": seen_ms},
                           "daemon_recorded_ms": summary(daemon_ms) | {"samples": daemon_ms},
                           "mttr_ms": summary(mttr_ms) | {"samples": mttr_ms}, "first_transition": first_hop}
    report.add(Row(id="B2", metric="crash (kill -9) → event seen by client, median", measured=median(seen_ms),
                   unit="ms", target="≤ 100 ms", ok=median(seen_ms) <= 100,
                   note=f"p90 {p90(seen_ms):.0f} ms, max {max(seen_ms):.0f} ms over {trials} kills (real server)"))
    report.add(Row(id="B2", metric="crash → transition recorded by daemon, median", measured=median(daemon_ms),
                   unit="ms", target="≤ 100 ms", ok=median(daemon_ms) <= 100,
                   note=f"p90 {p90(daemon_ms):.0f} ms; first transition(s): {sorted(set(first_hop))}"))
    start_ms = report.raw.get("startup_ms", {}).get("api", {}).get("median")
    report.add(Row(id="B3", metric="crash → ready again (first restart), median", measured=median(mttr_ms),
                   unit="ms", baseline=start_ms, baseline_label="B1 api up → ready",
                   vs_baseline=f"{median(mttr_ms) - start_ms:+.0f} ms" if start_ms else "",
                   target="≤ B1 + 1000 ms", ok=(median(mttr_ms) - start_ms <= 1000) if start_ms else None,
                   note=f"p90 {p90(mttr_ms):.0f} ms; restart is immediate when every transition above is 'starting'"))


def _hang(report: Report, daemon: Daemon, rec: EventRecorder, trials: int) -> None:
    daemon.client.act("up", [HANG], wait_s=30)
    measured, back = [], []
    for _ in range(trials):
        pid = _ready_pid(daemon, HANG)
        time.sleep(random.uniform(0.0, HANG_INTERVAL_S))  # SIGSTOP at a random phase of the probe cycle
        mark = rec.mark()
        mono = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        unhealthy, after = rec.wait_for(to_state(HANG, "unhealthy"), mark, 30)
        measured.append(unhealthy.seen - mono)
        ready, _ = rec.wait_for(to_state(HANG, "ready"), after, 60)
        back.append(ready.seen - mono)
    ratios = [m / HANG_INTERVAL_S for m in measured]
    report.raw["hang"] = {"interval_s": HANG_INTERVAL_S, "timeout_s": HANG_TIMEOUT_S,
                          "failure_threshold": HANG_THRESHOLD, "unhealthy_s": measured,
                          "ready_again_s": back, "ratio_to_interval": ratios}
    worst = max(ratios)
    report.add(Row(id="B2", metric="hang (SIGSTOP) → unhealthy, in poll intervals (max)", measured=worst, unit="x",
                   baseline=median(ratios), baseline_label="median of trials",
                   target="≤ 3 intervals", ok=worst <= 3.0,
                   note=f"interval_s={HANG_INTERVAL_S}, timeout_s={HANG_TIMEOUT_S}, failure_threshold="
                        f"{HANG_THRESHOLD}; measured {', '.join(f'{m:.2f}' for m in measured)} s; expected "
                        f"(probes at i/2 after a failure) between i+t and 2i+t = {HANG_INTERVAL_S + HANG_TIMEOUT_S:.2f}"
                        f"–{2 * HANG_INTERVAL_S + HANG_TIMEOUT_S:.2f} s; ready again after "
                        f"{median(back):.2f} s (median)"))


def _backoff(report: Report, daemon: Daemon, rec: EventRecorder, crashes: int) -> None:
    daemon.client.act("up", [LOOP], wait_s=30)
    delays = []
    for _ in range(crashes):
        pid = _ready_pid(daemon, LOOP)
        mark = rec.mark()
        os.kill(pid, signal.SIGKILL)
        left, after = rec.wait_for(leaving(LOOP, "ready"), mark, 10)
        starting, after = rec.wait_for(to_state(LOOP, "starting"), mark, 30)
        rec.wait_for(to_state(LOOP, "ready"), after, 30)
        delays.append(starting.event.at - left.event.at)
    expected = [0.0] + [BACKOFF_INITIAL_S * 2 ** i for i in range(crashes - 1)]
    within = all((e == 0 and d < 0.1) or (0.9 * e - 0.05 <= d <= 1.1 * e + 0.1)
                 for d, e in zip(delays, expected, strict=True))
    report.raw["backoff"] = {"delays_s": delays, "expected_s": expected}
    report.add(Row(id="B2", metric=f"backoff curve over {crashes} crashes (fake)", measured=delays[-1], unit="s",
                   baseline=expected[-1], baseline_label="documented curve, last step",
                   target="0, then doubling", ok=within,
                   note="measured " + ", ".join(f"{d:.2f}" for d in delays) + " s; expected "
                        + ", ".join(f"{e:.2f}" for e in expected) + " s (±10 % jitter)"))


def run(report: Report, daemon: Daemon, crash_trials: int, hang_trials: int, backoff_crashes: int) -> None:
    rec = EventRecorder(daemon.client)
    _crash(report, daemon, rec, crash_trials)
    daemon.client.act("down", [CRASH], wait_s=30)
    _hang(report, daemon, rec, hang_trials)
    daemon.client.act("down", [HANG], wait_s=30)
    _backoff(report, daemon, rec, backoff_crashes)
    daemon.client.act("down", [LOOP], wait_s=30)


def configs(real: str, fake: str, model: str, base_port: int) -> list[dict[str, object]]:
    from bench.supervision.fixtures import instance_config

    return [
        instance_config(CRASH, binary=real, model=model, port=base_port, autostart=False,
                        restart={"reset_after_s": 0}),
        instance_config(HANG, binary=real, model=model, port=base_port + 1, autostart=False,
                        health={"interval_s": HANG_INTERVAL_S, "timeout_s": HANG_TIMEOUT_S,
                                "failure_threshold": HANG_THRESHOLD},
                        restart={"reset_after_s": 0, "stop_grace_s": 2}),
        instance_config(LOOP, binary=fake, model=model, port=base_port + 2, autostart=False,
                        restart={"backoff_initial_s": BACKOFF_INITIAL_S, "backoff_max_s": 4, "reset_after_s": 600}),
    ]
