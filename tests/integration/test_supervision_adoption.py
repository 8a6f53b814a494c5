"""A child adopted by the next daemon (after `daemon stop --keep-instances` or a SIGKILLed daemon),
with the fake llama-server behind a real wrapper script and real daemons.

The command compared with the config is the one recorded at the spawn, not the argv the OS shows
(after a wrapper's `exec` that names the server, not the script); the uptime goes on while the
first probe confirms the adopted child; how an adopted child ended reads once, naturally.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from tests.support.orch import FAKE_SERVER, Home, kill_pid, wait_gone
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

UNKNOWN = "exit code unknown: adopted from an earlier daemon"


def wrapper(home: Home, name: str) -> Path:
    """What numactl or an environment script does: set up, then `exec` the server (same pid), so
    the OS shows the server's argv, not this script's."""
    path = home.scratch / name
    path.write_text(f'#!/bin/sh\nexport WRAPPED=1\nexec "{sys.executable}" "{FAKE_SERVER}" "$@"\n')
    path.chmod(0o755)
    return path


def restart_daemon(home: Home, *, kill: bool = False) -> None:
    """End the daemon, leaving its instances running, and start the next one (it adopts them)."""
    if kill:
        daemon = home.daemon_pid()
        kill_pid(daemon)
        wait_gone(daemon)
    else:
        home.ok("daemon", "stop", "--keep-instances")
    home.start_daemon()


def test_a_wrapper_script_binary_is_not_changed_after_adoption_and_keeps_its_uptime(home: Home, model: Path) -> None:
    binary = wrapper(home, "slow-llama-server")
    config_file = home.write_instance("r3", model=model, port=free_port(), binary=binary)
    home.start_daemon()
    home.ok("up", "r3")
    before = home.status("r3")
    assert before.state == "ready" and before.changed is None, before
    pid = before.pid
    assert pid is not None

    # the next daemon adopts the child while it does not answer: starting, with the uptime it had;
    # and so does the one after it, if that daemon is SIGKILLed before its first probe confirms it
    home.ok("daemon", "stop", "--keep-instances")
    os.kill(pid, signal.SIGSTOP)
    try:
        for kill in (False, True):
            if kill:
                restart_daemon(home, kill=True)
            else:
                home.start_daemon()
            confirming = home.wait_state("r3", "starting")
            assert (confirming.pid, confirming.ready_at) == (pid, before.ready_at), (before, confirming)
            assert confirming.uptime_s is not None and confirming.uptime_s >= (before.uptime_s or 0), confirming
    finally:
        os.kill(pid, signal.SIGCONT)
    after = home.wait_state("r3", "ready")
    assert (after.pid, after.ready_at, after.changed) == (pid, before.ready_at, None), (before, after)
    ps = home.ok("ps").out
    assert "*" not in ps, ps
    assert "changed    -" in home.ok("inspect", "r3").out
    up = home.ok("up", "r3")  # the last daemon read the command the one before it recorded at adoption
    assert home.status("r3").pid == pid, str(up)
    assert not [e for e in home.events("r3") if e.to_state == "stopping"], home.events("r3")

    # a binary really changed while no daemon ran is still seen, and `up` restarts for it
    home.ok("daemon", "stop", "--keep-instances")
    other = wrapper(home, "other-llama-server")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["binary"] = str(other)
    config_file.write_text(json.dumps(config), encoding="utf-8")
    home.start_daemon()
    changed = home.wait_state("r3", "ready").changed or ""
    assert changed.startswith("binary /") and " → " in changed and ";" not in changed, changed  # (paths shortened)
    home.ok("up", "r3")
    restarted = home.status("r3")
    assert restarted.state == "ready" and restarted.pid != pid and restarted.changed is None, restarted


def test_how_an_adopted_child_ended_reads_once(home: Home, model: Path) -> None:
    binary = home.fake_binary()
    for name in ("stopped", "killed"):
        home.write_instance(name, model=model, port=free_port(), binary=binary)
    home.start_daemon()
    home.ok("up")
    killed_pid = home.status("killed").pid
    assert killed_pid is not None
    restart_daemon(home)
    home.wait_state("stopped", "ready")
    home.wait_state("killed", "ready")

    kill_pid(killed_pid)
    crash = home.wait_event("killed", lambda e: e.from_state == "ready", what="the crash")
    assert crash.reason.startswith(f"exited ({UNKNOWN}); restart"), crash

    home.ok("stop", "stopped")
    stop = [e for e in home.events("stopped") if e.to_state == "stopped"][-1]
    assert stop.reason == f"stopped gracefully ({UNKNOWN})", stop
    assert home.status("stopped").last_exit == UNKNOWN
