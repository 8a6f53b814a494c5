"""Scenario 1: a child that aborts shortly after ready, every time, under the real daemon.

The daemon runs as a real detached process; the child is the fake llama-server with
FAKE_CRASH_AFTER. Checks: the restart delays announced in the event log follow the curve
(at once, then initial, 2×initial, 4×initial … within ±25 %), the actual gaps between leaving
`backoff` and starting again match what was announced, restarts and the last exit (signal 6)
are reported, and a sampler never sees two live processes for the instance.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.support.orch import Home, InstanceSampler
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

INITIAL_S = 0.3
CRASHES = 5  # restarts 1..5: 0, 0.3, 0.6, 1.2, 2.4 s


def test_crash_loop_follows_the_backoff_curve_with_one_process_at_a_time(home: Home, tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    home.write_instance(
        "crashy",
        model=model,
        port=free_port(),
        binary=home.fake_binary(),
        env={"FAKE_CRASH_AFTER": "0.3"},
        restart={"backoff_initial_s": INITIAL_S, "backoff_max_s": 60},
    )
    home.start_daemon()
    with InstanceSampler("crashy") as sampler:
        home.ok("start", "crashy", "-d")

        def restarted_enough() -> bool:
            # The CRASHES-th crash, and the restart after its backoff.
            events = home.events("crashy")
            crashes = [e for e in events if e.from_state == "ready"]
            return len(crashes) >= CRASHES and any(
                e.id > crashes[CRASHES - 1].id and e.from_state == "backoff" for e in events
            )

        wait_until(restarted_enough, 40, 0.1, f"crashy crashes {CRASHES} times")
        status = home.status("crashy")
        home.ok("stop", "crashy")
    sampler.assert_never_two()

    events = home.events("crashy")
    crashes = [e for e in events if e.from_state == "ready"][:CRASHES]
    delays = []
    for event in crashes:
        assert "killed by signal 6" in event.reason, event.reason
        if event.to_state == "starting":
            assert "restarting at once" in event.reason, event.reason
            delays.append(0.0)
        else:
            assert event.to_state == "backoff", event
            match = re.search(r"restart in ([0-9.]+) s", event.reason)
            assert match, event.reason
            delays.append(float(match.group(1)))
    expected = [0.0] + [INITIAL_S * 2**k for k in range(CRASHES - 1)]
    for got, want in zip(delays, expected, strict=True):
        assert want * 0.75 <= got <= want * 1.25 + 0.05, f"announced delays {delays}, expected about {expected}"

    # The announced delay is the one applied: backoff -> starting after about that long.
    by_id = {e.id: e for e in events}
    for event in crashes[1:]:
        announced = float(re.search(r"restart in ([0-9.]+) s", event.reason).group(1))  # type: ignore[union-attr]
        later = next(e for e in events if e.id > event.id and e.from_state == "backoff")
        assert later.to_state == "starting" and "backoff elapsed" in later.reason, later
        waited = later.at - by_id[event.id].at
        assert announced * 0.75 <= waited <= announced * 1.25 + 0.15, f"announced {announced} s, waited {waited:.2f} s"

    assert status.restarts >= CRASHES, status
    assert status.last_exit == "killed by signal 6", status
    assert "exited (killed by signal 6)" in (status.last_error or ""), status
    assert home.status("crashy").state == "stopped"
