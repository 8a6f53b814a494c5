"""The daemon itself under stress (scenarios 12, 13, 14, 15, 21), with the fake llama-server.

A stale pid from another boot (and a reused pid) is never signalled; of several daemons started
at once exactly one stays; 50 concurrent CLI commands leave one consistent state and never two
processes; a corrupt state.db is moved aside and the daemon carries on; a chatty child's log is
rotated while it runs without restarting it.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from tests.support.orch import (
    DOCUMENTED_EXIT_CODES,
    Home,
    InstanceSampler,
    Result,
    instance_pids,
    sleeper,
    wait_gone,
)
from tests.support.ports import free_port
from tests.support.waiting import wait_until

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.engine.identity import boot_id
from llama_orchestrator.errors import OrchestratorError
from llama_orchestrator.store import InstanceRecord, Store

pytestmark = pytest.mark.integration


def test_stale_pid_from_another_boot_or_reused_is_never_signalled(home: Home, model: Path) -> None:
    binary = home.fake_binary()
    home.write_instance("rebooted", model=model, port=free_port(), binary=binary)
    home.write_instance("reused", model=model, port=free_port(), binary=binary)
    with sleeper() as sleep_a, sleeper() as sleep_b:
        created_a = psutil.Process(sleep_a.pid).create_time()
        created_b = psutil.Process(sleep_b.pid).create_time()
        with Store.open(home.paths.state_db) as store:
            # Everything matches the sleep except the boot: a pid recorded before a reboot.
            store.save_instance(InstanceRecord(
                name="rebooted", state=InstanceState.READY, desired="up", pid=sleep_a.pid,
                pid_create_time=created_a, boot_id="0" * 32, token="t" * 32, updated_at=time.time(),
            ))
            # Same boot, but the pid now belongs to a process created at another time.
            store.save_instance(InstanceRecord(
                name="reused", state=InstanceState.READY, desired="down", pid=sleep_b.pid,
                pid_create_time=created_b - 100, boot_id=boot_id(), token="t" * 32, updated_at=time.time(),
            ))
        home.start_daemon()
        rebooted = home.wait_state("rebooted", "ready")  # it wanted to run: started fresh
        reused = home.wait_state("reused", "stopped")
        assert rebooted.pid not in (None, sleep_a.pid), rebooted
        assert reused.pid is None, reused
        first = {n: next(e for e in home.events(n) if e.from_state == "reconciling") for n in ("rebooted", "reused")}
        assert "other-boot" in first["rebooted"].reason and "adopted" not in first["rebooted"].reason, first
        assert "pid-reused" in first["reused"].reason and "adopted" not in first["reused"].reason, first
        home.ok("stop", "rebooted")
        assert sleep_a.poll() is None and sleep_b.poll() is None, "an unrelated process was signalled"
        for pid in (sleep_a.pid, sleep_b.pid):
            assert psutil.Process(pid).status() != psutil.STATUS_STOPPED


def test_of_five_daemons_started_at_once_exactly_one_stays(home: Home) -> None:
    racers = [home.popen_cli("daemon", "run", "--no-autostart") for _ in range(5)]
    try:
        def losers_done() -> bool:
            return sum(1 for p in racers if p.poll() is not None) >= 4

        wait_until(losers_done, 30, 0.05, "four of five daemons exit")
        alive = [p for p in racers if p.poll() is None]
        assert len(alive) == 1, [p.returncode for p in racers]
        winner = alive[0]
        home.daemon_pids.add(winner.pid)
        assert home.daemon_pid() == winner.pid
        for loser in racers:
            if loser is winner:
                continue
            _, err = loser.communicate(timeout=10)
            assert loser.returncode == 3, err
            assert f"already running for this home (pid {winner.pid}" in err, err
        home.ok("daemon", "stop")
        winner.communicate(timeout=30)
        assert winner.returncode == 0
    finally:
        for proc in racers:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


COMMANDS = [
    ("start", "-d"), ("stop", "-d"), ("restart", "-d"), ("ps",), ("ps", "--json"),
    ("start", "--timeout", "20"), ("stop", "--timeout", "20"), ("restart", "--timeout", "20"),
]


def _through_client(home: Home, args: tuple[str, ...]) -> Result:
    """What the CLI does for `args`, through DaemonClient; errors become their exit codes."""
    try:
        client = home.client()
        if args[0] == "ps":
            client.instances()
        else:
            wait = float(args[3]) if "--timeout" in args else None
            client.act(args[0], [args[1]], wait_s=wait)
    except OrchestratorError as exc:
        return Result(args, exc.exit_code, "", str(exc))
    return Result(args, 0, "", "")


def test_fifty_concurrent_commands_leave_one_consistent_state(home: Home, model: Path) -> None:
    home.write_instance(
        "contended", model=model, port=free_port(), binary=home.fake_binary(),
        env={"FAKE_LOAD_SECONDS": "0.2"}, restart={"stop_grace_s": 2},
    )
    home.start_daemon()
    rng = random.Random(20240601)
    plan = [rng.choice(COMMANDS) for _ in range(50)]

    def run(index: int) -> Result:
        command = plan[index]
        args = command if command[0] == "ps" else (command[0], "contended", *command[1:])
        if index % 5 < 2:
            return home.cli(*args, timeout_s=90)  # 20 real `llama-orch` processes
        return _through_client(home, args)  # 30 more through DaemonClient (cheaper on 2 cores)

    with InstanceSampler("contended") as sampler, ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(run, range(len(plan))))

        def settled() -> object:
            status = home.status("contended")
            return status if status.state in ("ready", "stopped", "failed") else None

        final = wait_until(settled, 30, 0.05, "contended settles")
    sampler.assert_never_two()
    for result in results:
        assert result.code in DOCUMENTED_EXIT_CODES, str(result)
        assert result.code in (0, 5), str(result)  # ok, or a documented conflict
        assert "Traceback" not in result.err, str(result)
    # The last accepted command decided what the user wants; the settled state must be that.
    assert final.state == ("ready" if final.desired == "up" else "stopped"), final
    live = instance_pids("contended")
    assert live == ({final.pid} if final.state == "ready" else set()), (final, live)
    # ...and one more command afterwards is obeyed exactly.
    last = "stop" if final.state == "ready" else "start"
    home.ok(last, "contended", "--timeout", "20")
    after = home.status("contended")
    assert after.state == ("stopped" if last == "stop" else "ready"), after
    assert instance_pids("contended") == ({after.pid} if after.pid else set())


def test_corrupt_state_db_is_moved_aside_and_the_daemon_carries_on(home: Home, model: Path) -> None:
    home.write_instance("survivor", model=model, port=free_port(), binary=home.fake_binary())
    home.paths.state_db.write_bytes(os.urandom(8192))
    home.start_daemon()
    status = home.ok("daemon", "status")
    assert "moved to" in status.out and "corrupt" in status.out, str(status)
    info = home.client().status()
    assert not info.store_ok
    moved = re.search(r"moved to (\S+)", info.store)
    assert moved and Path(moved.group(1)).is_file(), info.store
    assert home.paths.state_db.read_bytes()[:16] == b"SQLite format 3\x00"
    result = home.ok("start", "survivor")
    assert "survivor: ready" in result.out, str(result)
    home.ok("stop", "survivor")
    assert home.status("survivor").state == "stopped"


def test_chatty_child_log_is_rotated_while_it_runs_and_never_restarted(home: Home, model: Path) -> None:
    max_bytes, backups = 64 * 1024, 2
    rate = 400  # lines per second, ~95 bytes each: ~38 KB/s
    home.write_instance(
        "chatty", model=model, port=free_port(), binary=home.fake_binary(),
        env={"FAKE_CHATTY": str(rate)}, logs={"max_bytes": max_bytes, "backups": backups},
    )
    home.start_daemon()
    home.ok("start", "chatty")
    pid = home.status("chatty").pid
    log = home.paths.instance_log("chatty")
    files = [log, *(log.with_name(f"{log.name}.{i}") for i in range(1, backups + 1))]
    # Copy-truncate by a poller: a file may outgrow max_bytes by what the child writes between two
    # checks (the daemon checks every second); allow two seconds of output per file.
    per_file = max_bytes + rate * 100 * 2
    biggest: dict[str, int] = {}

    def watch_sizes() -> bool:
        for f in files:
            if f.exists():
                biggest[f.name] = max(biggest.get(f.name, 0), f.stat().st_size)
        return files[-1].exists()

    wait_until(watch_sizes, 60, 0.05, f"{files[-1].name} appears (two rotations)")
    wait_until(lambda: watch_sizes() and files[-1].stat().st_mtime < log.stat().st_mtime - 1, 30, 0.05,
               "one more rotation interval passes")
    assert all(size <= per_file for size in biggest.values()), (biggest, per_file)
    assert sum(biggest.values()) <= (backups + 1) * per_file, biggest
    assert not log.with_name(f"{log.name}.{backups + 1}").exists()
    status = home.status("chatty")
    assert status.state == "ready" and status.pid == pid and status.restarts == 0, status
    assert instance_pids("chatty") == {pid}
    tail = home.ok("logs", "chatty", "-n", "5").out.splitlines()
    assert len(tail) == 5 and all("fake: chatty line" in line for line in tail), tail
    numbers = [int(re.search(r"chatty line (\d+)", line).group(1)) for line in tail]  # type: ignore[union-attr]
    assert numbers == sorted(numbers) and numbers[-1] - numbers[0] == 4, numbers
    assert json.loads(home.ok("ps", "--json").out)["instances"][0]["restarts"] == 0
    home.ok("stop", "chatty")
    wait_gone(pid, 5)
