"""`rm` of an instance the last daemon left running, with no daemon: a daemon is started to adopt
and stop it first, never its config deleted under a llama-server left running, untracked. And
what `events NAME` and `daemon status --json` answer with a daemon running. Real daemons, the
fake llama-server.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from tests.support.orch import Home, instance_pids, kill_pid, wait_gone
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("how", ["keep-instances", "killed"])
def test_rm_with_no_daemon_stops_what_the_last_one_left_running(home: Home, model: Path, how: str) -> None:
    binary = home.fake_binary()
    for name in ("r1", "idle"):
        home.write_instance(name, model=model, port=free_port(), binary=binary, autostart=False)
    try:
        home.ok("start", "r1")
        home.remember_daemon()
        (pid,) = instance_pids("r1")
        if how == "killed":
            daemon = home.daemon_pid()
            os.kill(daemon, signal.SIGKILL)
            wait_gone(daemon)
        else:
            home.ok("daemon", "stop", "--keep-instances")
        assert not home.daemon_running() and instance_pids("r1") == {pid}

        idle = home.ok("rm", "idle", "-y")  # nothing of it runs: removed with no daemon, as before
        assert "removed idle" in idle.text and not home.daemon_running(), str(idle)

        removed = home.ok("rm", "r1", "-y")
        assert "removed r1" in removed.text and "starting a daemon to stop it first" in removed.err, str(removed)
        home.remember_daemon()
        assert instance_pids("r1") == set()  # stopped first: rm returns once the daemon has stopped it
        assert not home.paths.instance_dir("r1").exists()
        assert [s.name for s in home.client().instances()] == []  # the daemon rm started knows of nothing left
        assert "r1" not in home.ok("ps", "-a").out
    finally:
        for leftover in instance_pids("r1"):  # without the fix: left running, by no daemon's hand
            kill_pid(leftover)


def test_events_and_daemon_status_json_with_a_daemon(home: Home, model: Path) -> None:
    home.write_instance("r1", model=model, port=free_port(), binary=home.fake_binary(), autostart=False)
    home.start_daemon()

    for tail in ("100", "0"):
        unknown = home.cli("events", "nope", "-n", tail)
        assert unknown.code == 4 and "no instance named 'nope'" in unknown.err and unknown.out == "", str(unknown)
        assert home.cli("events", "r1", "-n", tail).code == 0  # a config, maybe no history yet
    home.ok("start", "r1")
    home.ok("rm", "r1", "-y")
    history = [json.loads(line) for line in home.ok("events", "r1", "--json").out.splitlines()]
    assert history and {e["instance"] for e in history} == {"r1"}  # removed, its history kept and shown
    assert home.ok("events", "r1", "-n", "0").out == ""

    status = json.loads(home.ok("daemon", "status", "--json").out)
    assert status["running"] is True and status["pid"] == home.daemon_pid(), status
    assert status["home"] == str(home.root) and "gateway" in status and "instances" in status  # the old fields
