"""What a clean `daemon stop` leaves behind, with real daemons and the fake llama-server.

A clean stop records every instance stopped: the next daemon starts only the `autostart` ones
(none with --no-autostart), not an on-demand one that happened to be loaded nor one started by
hand. A daemon killed with its children alive still hands them to the next one. And the
commands that only look (`ps`, `ls`, `inspect`, `logs`, `events`) never start a daemon.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support.orch import Home, instance_pids, wait_gone
from tests.support.ports import free_port
from tests.support.waiting import wait_until

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.store import InstanceRecord, Store

pytestmark = pytest.mark.integration

NAMES = ("auto", "lazy", "manual", "held")


def _fleet(home: Home, model: Path) -> None:
    """auto: autostart; lazy: on-demand; manual: neither; held: autostart, stopped by the user."""
    binary = home.fake_binary()
    starts: dict[str, dict[str, Any]] = {"auto": {}, "lazy": {"on_demand": True, "autostart": False},
                                         "manual": {"autostart": False}, "held": {}}
    for name, extra in starts.items():
        home.write_instance(name, model=model, port=free_port(), binary=binary, **extra)


def _all_running(home: Home) -> None:
    """Each instance ready, then `held` stopped by the user: what a day's use leaves."""
    home.ok("up")
    home.ok("start", "lazy", "manual")
    for name in NAMES:
        assert home.status(name).state == "ready"
    home.ok("stop", "held")


def _start_daemon(home: Home, *, autostart: bool) -> int:
    """`daemon start`, waiting until the new daemon has reconciled and done its autostart."""
    log = home.paths.daemon_log
    since = len(log.read_text().splitlines()) if log.exists() else 0
    pid = home.start_daemon(autostart=autostart)
    wait_until(lambda: any(f"ready (pid {pid}" in line for line in log.read_text().splitlines()[since:]),
               30, 0.05, "the new daemon ready (its autostart done)")
    return pid


def _since(home: Home, name: str, daemon_pid: int) -> list[tuple[str | None, str, str]]:
    """`name`'s transitions since the daemon `daemon_pid` began (from its first reconciling)."""
    events = home.events(name)
    first = max(i for i, e in enumerate(events) if e.from_state == "reconciling")
    return [(e.from_state, e.to_state, e.reason) for e in events[first:]]


def test_listing_commands_after_daemon_stop_bring_nothing_back(home: Home, model: Path) -> None:
    _fleet(home, model)
    _all_running(home)
    home.remember_daemon()
    home.ok("daemon", "stop")
    assert not home.daemon_running() and all(instance_pids(n) == set() for n in NAMES)

    ps = home.ok("ps", "-a")
    assert "daemon: not running" in ps.out and "no daemon is running" in ps.err, str(ps)
    rows = {line.split()[0]: line.split()[1] for line in ps.out.splitlines()[2:] if line.strip()}
    assert rows == dict.fromkeys(NAMES, "stopped"), str(ps)
    listed = json.loads(home.ok("ps", "--json").out)
    assert listed == {"daemon": None, "gateway": None, "instances": []}  # every one stopped: hidden
    for args in (("ls",), ("inspect", "lazy"), ("logs", "lazy"), ("events", "lazy")):
        home.ok(*args)
    detail = json.loads(home.ok("inspect", "lazy", "--json").out)
    assert detail["status"]["state"] == "stopped" and detail["status"]["pid"] is None, detail["status"]
    assert "fake" in detail["argv"][0], detail["argv"]
    assert "listening on http://" in home.ok("logs", "lazy", "-n", "1000").out
    events = home.ok("events", "lazy", "--json").out.splitlines()
    assert json.loads(events[-1])["to_state"] == "stopped", events
    for follow in (("ps", "-w"), ("events", "-f")):  # nothing to follow without a daemon: exit 3, said
        result = home.cli(*follow)
        assert result.code == 3 and "no daemon is running" in result.err, str(result)

    assert not home.daemon_running() and not home.paths.control_file.exists()
    assert all(instance_pids(n) == set() for n in NAMES)


def test_ps_in_a_fresh_home_starts_no_daemon(home: Home) -> None:
    ps = home.ok("ps")
    assert ps.out.splitlines()[0] == "gateway: not running   daemon: not running", str(ps)
    assert not home.daemon_running() and not home.paths.state_db.exists()
    unknown = home.cli("inspect", "ghost")
    assert unknown.code == 4 and "no instance named 'ghost'" in unknown.err, str(unknown)
    broken = home.paths.instance_config("broken")
    broken.parent.mkdir(parents=True)
    broken.write_text(json.dumps({"name": "broken", "model": {"path": "/m.gguf"}, "server": {"port": 70000}}))
    invalid = home.cli("inspect", "broken")
    assert invalid.code == 2 and "server.port" in invalid.err, str(invalid)
    listed = home.ok("ps", "-a").out  # shown, and said to be invalid
    assert any(line.split()[:2] == ["broken", "stopped*"] for line in listed.splitlines()), listed
    assert "config invalid: `llama-orch config validate` says why" in " ".join(listed.split()), listed
    assert not home.daemon_running()


def test_a_clean_daemon_stop_leaves_only_autostart_to_come_back(home: Home, model: Path) -> None:
    _fleet(home, model)
    _all_running(home)
    home.remember_daemon()
    home.ok("daemon", "stop")

    # without autostart: nothing comes back, and the events say why
    daemon = _start_daemon(home, autostart=False)
    for name in NAMES:
        assert home.status(name).state == "stopped" and instance_pids(name) == set(), home.status(name)
        assert _since(home, name, daemon) == [("reconciling", "stopped", "stopped when the last daemon ended")]
    home.ok("daemon", "stop")

    # with autostart: the autostart instance the user did not stop, and only it
    daemon = _start_daemon(home, autostart=True)
    assert home.wait_state("auto", "ready").state == "ready"
    assert _since(home, "auto", daemon)[:2] == [("reconciling", "stopped", "stopped when the last daemon ended"),
                                                ("stopped", "starting", "autostart")]
    for name in ("lazy", "manual", "held"):
        assert home.status(name).state == "stopped" and instance_pids(name) == set(), home.status(name)


def test_a_killed_daemon_still_hands_its_children_to_the_next(home: Home, model: Path) -> None:
    """An on-demand instance loaded when the daemon is killed is adopted, and one whose process
    died with no daemon is started again: the last daemon never stopped them."""
    _fleet(home, model)
    home.start_daemon()
    home.ok("start", "lazy", "manual")
    (lazy,), (manual,) = instance_pids("lazy"), instance_pids("manual")
    daemon = home.daemon_pid()
    os.kill(daemon, signal.SIGKILL)
    wait_gone(daemon)
    os.kill(manual, signal.SIGKILL)
    wait_gone(manual)

    ps = home.ok("ps")  # with no daemon: the process left running, unsupervised
    row = next(line.split() for line in ps.out.splitlines() if line.startswith("lazy"))
    assert row[:3] == ["lazy", "ready", str(lazy)] and "1 instance(s) left running" in ps.out, str(ps)
    assert not home.daemon_running()

    daemon = _start_daemon(home, autostart=False)
    assert home.wait_state("lazy", "ready").pid == lazy
    assert f"adopted running pid {lazy}" in _since(home, "lazy", daemon)[0][2]
    restarted = home.wait_state("manual", "ready")
    assert restarted.pid not in (None, manual)
    assert "exited-while-unsupervised" in _since(home, "manual", daemon)[0][2]
    assert home.status("auto").state == "stopped"  # --no-autostart


def test_nothing_in_backoff_at_a_clean_stop_nor_stopped_by_an_older_daemon_is_resumed(home: Home, model: Path) -> None:
    """`crashy` waits out a long backoff when the daemon stops; `old` is the row an older daemon
    wrote at its clean stop (stopped, yet desired up): neither is started by the next daemon."""
    home.write_instance("crashy", model=model, port=free_port(), binary=home.fake_binary(), autostart=False,
                        env={"FAKE_CRASH_AFTER": "0.2"}, restart={"backoff_initial_s": 60, "backoff_max_s": 60})
    home.write_instance("old", model=model, port=free_port(), binary=home.fake_binary(), autostart=False)
    home.start_daemon()
    home.ok("start", "crashy")
    home.wait_state("crashy", "backoff")  # crashed twice: the first restart is at once, the next in 60 s
    home.ok("daemon", "stop")
    with Store.open(home.paths.state_db) as store:
        assert store.get_instance("crashy").state is InstanceState.STOPPED  # type: ignore[union-attr]
        store.save_instance(InstanceRecord(name="old", state=InstanceState.STOPPED, desired="up",
                                           updated_at=time.time()))

    daemon = _start_daemon(home, autostart=False)
    assert _since(home, "crashy", daemon) == [("reconciling", "stopped", "stopped when the last daemon ended")]
    assert _since(home, "old", daemon) == [("reconciling", "stopped", "stopped when the last daemon ended")]
    assert instance_pids("crashy") == instance_pids("old") == set()
