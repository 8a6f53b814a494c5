"""Faults the real llama-server can show, under the real daemon (scenarios 2, 4, 9, 11, 23).

A corrupt model and a missing one, a SIGSTOPped (hung) server, a port held by a foreign process,
the daemon SIGKILLed with three instances running, and `daemon stop` with and without
`--keep-instances`. The daemon is a real detached process; commands go through `llama-orch`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from tests.support.orch import (
    Home,
    InstanceSampler,
    instance_pids,
    kill_pid,
    main_processes,
    port_squatter,
    wait_gone,
)
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.real_server]


def _stays(predicate: Callable[[], bool], watch_s: float, what: str) -> None:
    """A negative observation: `predicate` holds throughout a short watch (not a synchronisation)."""
    try:
        wait_until(lambda: not predicate(), watch_s, 0.05, what)
    except AssertionError:
        return
    raise AssertionError(f"stopped holding during the watch: {what}")


def _new_ready_pid(home: Home, name: str, old: int) -> int | None:
    status = home.status(name)
    return status.pid if status.state == "ready" and status.pid not in (None, old) else None


def _starts(home: Home, name: str) -> int:
    return sum(1 for e in home.events(name) if e.to_state == "starting")


def test_corrupt_model_fails_after_one_attempt_and_starts_once_fixed(
    home: Home, tmp_path: Path, llama_server_bin: Path, tiny_model: Path
) -> None:
    model = tmp_path / "corrupt.gguf"
    model.write_bytes(b"GGUF" + os.urandom(256 * 1024))  # GGUF by its first bytes: only loading it tells
    home.write_instance("corrupt", model=model, port=free_port(), binary=llama_server_bin)
    home.start_daemon()

    result = home.cli("start", "corrupt")
    assert result.code == 6, str(result)
    assert "model-load-error" in result.err, str(result)
    status = home.status("corrupt")
    assert status.state == "failed" and "model-load-error" in (status.last_error or ""), status
    ps = home.ok("ps")
    row = next(line for line in ps.out.splitlines() if line.strip().startswith("corrupt"))
    assert "failed" in row and "model-load-error" in row, ps.out
    detail = home.client().inspect("corrupt")
    assert any("model" in line for line in detail.log_tail), detail.log_tail
    assert _starts(home, "corrupt") == 1
    _stays(lambda: _starts(home, "corrupt") == 1 and not instance_pids("corrupt"), 1.5, "no further spawn")

    shutil.copyfile(tiny_model, model)
    result = home.ok("start", "corrupt")
    assert "corrupt: ready" in result.out, str(result)
    assert home.status("corrupt").state == "ready"


@pytest.mark.parametrize("kind", ["missing", "lfs-pointer"])
def test_a_missing_or_non_gguf_model_fails_at_once_naming_the_path(
    home: Home, tmp_path: Path, llama_server_bin: Path, kind: str
) -> None:
    model = tmp_path / "nowhere" / "model.gguf"
    reason = f"model file not found: {model}"
    if kind == "lfs-pointer":
        model = tmp_path / "model.gguf"
        model.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
        reason = f"{model} is a Git LFS pointer, not the model: run `git lfs pull` where it was cloned"
    home.write_instance("bad", model=model, port=free_port(), binary=llama_server_bin)
    home.start_daemon()
    result = home.cli("start", "bad")
    assert result.code == 6, str(result)
    assert reason in result.err, str(result)
    status = home.status("bad")
    assert status.state == "failed" and reason in (status.last_error or ""), status
    # nothing was spawned: the log holds only the daemon's note of why
    (line,) = home.log_text("bad").splitlines()
    assert line.startswith("[llama-orch ") and line.endswith(f"not started: {reason}"), line
    assert instance_pids("bad") == set()


def test_a_misspelt_flag_is_refused_before_any_spawn_naming_the_flag_it_meant(
    home: Home, llama_server_bin: Path, tiny_model: Path
) -> None:
    home.write_instance("typo", model=tiny_model, port=free_port(), binary=llama_server_bin,
                        args=["--ctx-sise", "512"])
    meant = f"--ctx-sise is not a flag of {llama_server_bin}; did you mean --ctx-size?"
    validate = home.cli("config", "validate")
    assert validate.code == 2 and meant in validate.out + validate.err, str(validate)
    assert home.cli("config", "validate", "--offline").code == 0
    home.start_daemon()
    result = home.cli("start", "typo")
    assert result.code == 6, str(result)
    assert f"bad-argument: args: {meant}" in result.err, str(result)
    assert home.status("typo").state == "failed"
    (line,) = home.log_text("typo").splitlines()
    assert line.endswith(f"not started: bad-argument: args: {meant}"), line
    assert instance_pids("typo") == set()


def test_sigstopped_server_is_marked_unhealthy_and_replaced(
    home: Home, llama_server_bin: Path, tiny_model: Path
) -> None:
    home.write_instance(
        "hung", model=tiny_model, port=free_port(), binary=llama_server_bin,
        health={"interval_s": 0.2, "timeout_s": 0.3, "failure_threshold": 3}, restart={"stop_grace_s": 2},
    )
    home.start_daemon()
    home.ok("start", "hung")
    old = home.status("hung").pid
    assert old is not None
    with InstanceSampler("hung") as sampler:
        os.kill(old, signal.SIGSTOP)
        try:
            home.wait_event("hung", lambda e: e.to_state == "unhealthy", 20, "hung marked unhealthy")
            new_pid = wait_until(lambda: _new_ready_pid(home, "hung", old), 30, 0.05, "a new hung is ready")
            wait_gone(old, 1)  # the daemon's stop (SIGTERM + SIGCONT, then SIGKILL) ended it, not our SIGCONT
        finally:
            kill_pid(old, signal.SIGCONT)
    sampler.assert_never_two()
    ready = home.status("hung")
    assert ready.state == "ready" and new_pid != old
    unhealthy = next(e for e in home.events("hung") if e.to_state == "unhealthy")
    assert "3 failed health checks in a row" in unhealthy.reason, unhealthy
    assert instance_pids("hung") == {new_pid}


def test_port_held_by_a_foreign_process_fails_naming_the_holder_and_never_signals_it(
    home: Home, llama_server_bin: Path, tiny_model: Path
) -> None:
    port = free_port()
    home.write_instance("squatted", model=tiny_model, port=port, binary=llama_server_bin)
    with port_squatter(port) as helper:
        home.start_daemon()
        result = home.cli("up", "squatted")
        assert result.code == 6, str(result)
        assert "port-in-use" in result.err and f"held by pid {helper.pid}" in result.err, str(result)
        ps = json.loads(home.ok("ps", "--json").out)["instances"]
        row = next(r for r in ps if r["name"] == "squatted")
        assert row["state"] == "failed", row
        assert "port-in-use" in row["last_error"] and f"held by pid {helper.pid}" in row["last_error"], row
        assert _starts(home, "squatted") == 1
        _stays(lambda: _starts(home, "squatted") == 1, 1.0, "no retry storm")
        assert instance_pids("squatted") == set()
        assert helper.poll() is None, "the foreign process was signalled"
        assert psutil.Process(helper.pid).status() != psutil.STATUS_STOPPED


def _three_ready(home: Home, llama_server_bin: Path, tiny_model: Path) -> dict[str, int]:
    names = ["one", "two", "three"]
    for name in names:
        home.write_instance(name, model=tiny_model, port=free_port(), binary=llama_server_bin)
    home.start_daemon()
    result = home.ok("up", timeout_s=120)
    for name in names:
        assert f"{name}: ready" in result.out, str(result)
    pids = {s.name: s.pid for s in home.client().instances()}
    assert all(pids.values()), pids
    return {n: p for n, p in pids.items() if p is not None}


def test_daemon_sigkilled_with_three_instances_is_replaced_by_one_that_adopts_them(
    home: Home, llama_server_bin: Path, tiny_model: Path
) -> None:
    pids = _three_ready(home, llama_server_bin, tiny_model)
    restarts = {s.name: s.restarts for s in home.client().instances()}
    with InstanceSampler(*pids) as sampler:
        daemon = home.daemon_pid()
        kill_pid(daemon)
        wait_gone(daemon)
        assert {n: instance_pids(n) for n in pids} == {n: {p} for n, p in pids.items()}

        assert home.ok("ps").out.startswith("gateway: not running   daemon: not running")  # `ps` starts none
        assert home.start_daemon() != daemon  # a new daemon, which reconciles
        first = home.ok("ps", "--json")

        def all_ready() -> list[dict[str, object]] | None:
            rows = json.loads(home.ok("ps", "--json").out)["instances"]
            return rows if all(r["state"] == "ready" for r in rows) and len(rows) == 3 else None

        rows = wait_until(all_ready, 20, 0.1, "all three ready again")
    sampler.assert_never_two()
    assert {r["name"]: r["pid"] for r in rows} == pids, (first.out, rows)
    assert {r["name"]: r["restarts"] for r in rows} == restarts
    for name, pid in pids.items():
        events = home.events(name)
        reconciled = [e for e in events if e.from_state == "reconciling"]
        # The first daemon found nothing recorded; the second adopted the live pid.
        assert len(reconciled) == 2 and f"adopted running pid {pid}" in reconciled[1].reason, reconciled
        assert {p.pid for p in main_processes(name)} == {pid}
        spawns = [e for e in events if e.to_state == "starting" and e.from_state != "reconciling"]
        assert len(spawns) == 1, events  # the `up`; adoption spawned nothing


def test_daemon_stop_stops_every_server_and_keep_instances_hands_them_to_the_next_daemon(
    home: Home, llama_server_bin: Path, tiny_model: Path
) -> None:
    pids = _three_ready(home, llama_server_bin, tiny_model)
    result = home.ok("daemon", "stop", "--keep-instances")
    assert "instances left running" in result.out, str(result)
    assert not home.daemon_running()
    assert {n: instance_pids(n) for n in pids} == {n: {p} for n, p in pids.items()}

    home.start_daemon()
    for name, pid in pids.items():
        status = home.wait_state(name, "ready", timeout_s=20)
        assert status.pid == pid, status
        assert any(f"adopted running pid {pid}" in e.reason for e in home.events(name))

    result = home.ok("daemon", "stop")
    assert "instances stopped" in result.out, str(result)
    for pid in pids.values():
        wait_gone(pid, 5)
    for name in pids:
        assert instance_pids(name) == set(), name
    assert not home.daemon_running()


def test_a_binary_that_is_a_wrapper_script_is_not_changed_once_adopted(
    home: Home, llama_server_bin: Path, tiny_model: Path
) -> None:
    """numactl, an environment script: `binary` execs llama-server (the same pid), so the OS then shows
    the server's argv; the next daemon compares the command recorded at the spawn, and `up` keeps it."""
    wrapper = home.scratch / "slow-llama-server"
    wrapper.write_text(f'#!/bin/sh\nexport WRAPPED=1\nexec "{llama_server_bin}" "$@"\n')
    wrapper.chmod(0o755)
    home.write_instance("r3", model=tiny_model, port=free_port(), binary=wrapper)
    home.start_daemon()
    home.ok("up", "r3", timeout_s=120)
    pid = home.status("r3").pid
    assert pid is not None and psutil.Process(pid).cmdline()[0] == str(llama_server_bin)  # after the exec

    home.ok("daemon", "stop", "--keep-instances")
    home.start_daemon()
    adopted = home.wait_state("r3", "ready", timeout_s=20)
    assert (adopted.pid, adopted.changed) == (pid, None), adopted
    assert "*" not in home.ok("ps").out
    home.ok("up", "r3")
    assert home.status("r3").pid == pid
    assert not [e for e in home.events("r3") if e.to_state == "stopping"], home.events("r3")
