"""Engine against real processes: spawn, exit watching, stopping trees, identity checks.

Every process here is started by the test through `spawn` (or by a child we spawned); the
`spawned` fixture kills whatever still carries one of our child tokens at teardown, by PID,
and fails the test if anything had leaked.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from llama_orchestrator.engine import (
    ChildProcess,
    ExitStatus,
    ProcessIdentity,
    SpawnSpec,
    adopt,
    boot_id,
    check_ours,
    exit_status_now,
    kill_tree,
    spawn,
    stop_tree,
    wait_exit,
)
from llama_orchestrator.engine.sweep import kill_token_holders, token_holders
from llama_orchestrator.errors import SpawnError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups"),
]

CHILD = Path(__file__).parent / "engine_children" / "child.py"
Spawner = Callable[..., ChildProcess]


def wait_until(predicate: Callable[[], object], timeout_s: float, message: str = "condition") -> object:
    """Poll `predicate` against a deadline (self-contained: tests/ may not be importable)."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(0.02)
    return value


async def async_wait_until(predicate: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[Spawner]:
    """Spawn engine_children/child.py in a mode; at teardown kill and report leftovers."""
    children: list[ChildProcess] = []

    def start(*args: str, instance: str = "t", env: dict[str, str] | None = None) -> ChildProcess:
        spec = SpawnSpec(
            instance=instance,
            argv=[sys.executable, str(CHILD), *args],
            env=env or {},
            log_path=tmp_path / "logs" / f"{instance}-{len(children)}.log",
        )
        child = spawn(spec)
        children.append(child)
        return child

    yield start
    leaked: list[int] = []
    for child in children:
        leaked += [p.pid for p in token_holders(child.token)]
        kill_token_holders(child.token)
        if child.popen is not None and child.popen.poll() is None:
            leaked.append(child.pid)
            child.popen.kill()
        if child.popen is not None:
            child.popen.wait(timeout=10)
    assert not leaked, f"processes left running: {leaked}"


def log_of(child: ChildProcess, tmp_path: Path) -> Path:
    return next((tmp_path / "logs").glob(f"{child.instance}-*.log"))


def wait_log(path: Path, needle: str) -> str:
    wait_until(lambda: needle in path.read_text(), 10, message=f"{needle!r} in log")
    return path.read_text()


def grandchild_pid(path: Path) -> int:
    text = wait_log(path, "grandchild=")
    return int(text.split("grandchild=")[1].split()[0])


# --- spawn -------------------------------------------------------------------------------------


async def test_spawn_writes_log_markers_and_literal_argv(spawned: Spawner, tmp_path: Path) -> None:
    tricky = ["two words", "$HOME;`id`|&*?", "'\"\\", "--flag=a b"]
    child = spawned("env", *tricky, instance="alpha", env={"ENGINE_TEST_EXTRA": "yes"})
    assert await wait_exit(child) == ExitStatus(code=0, signal=None)
    report = json.loads(log_of(child, tmp_path).read_text().strip())
    assert report == {"instance": "alpha", "token": child.token, "extra": "yes", "argv": tricky}
    assert child.boot_id == boot_id()
    assert child.token and child.popen is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")
def test_a_child_spawned_under_the_daemons_sched_batch_runs_with_the_normal_policy(spawned: Spawner) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from llama_orchestrator import scheduling

    def spawn_under_batch() -> tuple[ChildProcess, int]:
        with scheduling.batch({}):
            child = spawned("sleep")
            return child, os.sched_getscheduler(0)

    with ThreadPoolExecutor(1) as pool:  # (a policy is per thread: pytest's is left alone)
        child, spawner_after = pool.submit(spawn_under_batch).result(10)
    policy = os.sched_getscheduler(child.pid)
    assert child.popen is not None
    child.popen.kill()
    child.popen.wait(10)
    assert policy == os.SCHED_OTHER  # llama-server does not inherit it
    assert spawner_after == os.SCHED_BATCH  # and the daemon's thread keeps it


def test_spawn_missing_binary_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "llama-server"
    with pytest.raises(SpawnError) as err:
        spawn(SpawnSpec("m", [str(missing), "--port", "1"], {}, tmp_path / "m.log"))
    assert str(missing) in str(err.value)
    assert err.value.hint


def test_spawn_non_executable_binary_says_chmod(tmp_path: Path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o644)
    with pytest.raises(SpawnError) as err:
        spawn(SpawnSpec("m", [str(binary)], {}, tmp_path / "m.log"))
    assert "not executable" in str(err.value)
    assert err.value.hint is not None and "chmod" in err.value.hint


# --- wait_exit ---------------------------------------------------------------------------------


async def test_wait_exit_reports_exit_code(spawned: Spawner) -> None:
    child = spawned("exit", "3")
    assert await wait_exit(child) == ExitStatus(code=3, signal=None)
    assert exit_status_now(child) == ExitStatus(code=3, signal=None)


async def test_wait_exit_reports_sigkill(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("sleep")
    wait_log(log_of(child, tmp_path), "ready")
    waiter = asyncio.create_task(wait_exit(child))
    os.kill(child.pid, signal.SIGKILL)
    assert await waiter == ExitStatus(code=None, signal=signal.SIGKILL)
    assert not psutil.pid_exists(child.pid)  # reaped: no zombie left


async def test_wait_exit_reports_sigabrt(spawned: Spawner) -> None:
    child = spawned("abort")
    assert await wait_exit(child) == ExitStatus(code=None, signal=signal.SIGABRT)


async def test_wait_exit_two_waiters_get_the_same_status(spawned: Spawner) -> None:
    child = spawned("exit", "5")
    first, second = await asyncio.gather(wait_exit(child), wait_exit(child))
    assert first == second == ExitStatus(code=5, signal=None)


async def test_wait_exit_detects_adopted_process_exit(spawned: Spawner, tmp_path: Path) -> None:
    parent = spawned("orphan")
    pid = grandchild_pid(log_of(parent, tmp_path))
    assert await wait_exit(parent) == ExitStatus(code=0, signal=None)
    identity = ProcessIdentity(pid, psutil.Process(pid).create_time(), boot_id(), parent.token)
    assert check_ours(identity).adoptable
    orphan = adopt(identity, instance="t")
    assert orphan.popen is None
    waiter = asyncio.create_task(wait_exit(orphan))
    await asyncio.sleep(0)
    assert not waiter.done()
    os.kill(pid, signal.SIGKILL)  # a process our child started, by PID
    assert await asyncio.wait_for(waiter, 10) == ExitStatus(code=None, signal=None)


# --- stop_tree / kill_tree ---------------------------------------------------------------------


async def test_stop_tree_graceful_child_exits_zero_and_is_not_killed(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("graceful")
    log = log_of(child, tmp_path)
    wait_log(log, "ready")
    outcome = await stop_tree(child, grace_s=30)
    assert outcome.graceful
    assert outcome.exit == ExitStatus(code=0, signal=None)
    assert outcome.killed_pids == []
    assert "bye" in log.read_text()


async def test_stop_tree_kills_sigterm_ignoring_child_and_its_group(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("ignore-term")
    wait_log(log_of(child, tmp_path), "ready")
    outcome = await stop_tree(child, grace_s=0.3)
    assert not outcome.graceful
    assert outcome.exit == ExitStatus(code=None, signal=signal.SIGKILL)
    assert child.pid in outcome.killed_pids
    assert not psutil.pid_exists(child.pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)  # the group is empty


async def test_stop_tree_stops_a_sigstopped_child(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("graceful")
    wait_log(log_of(child, tmp_path), "ready")
    os.kill(child.pid, signal.SIGSTOP)
    wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_STOPPED, 10, message="stopped")
    outcome = await stop_tree(child, grace_s=30)
    assert outcome.graceful  # SIGCONT let the pending SIGTERM through
    assert outcome.exit == ExitStatus(code=0, signal=None)


async def test_stop_tree_kills_grandchild_holding_the_log_open(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("fork-grandchild")
    log = log_of(child, tmp_path)
    gc = grandchild_pid(log)
    wait_log(log, "ready")  # the grandchild is up and ignores SIGTERM
    outcome = await stop_tree(child, grace_s=5)
    assert outcome.exit == ExitStatus(code=None, signal=signal.SIGTERM)
    assert outcome.graceful
    assert gc in outcome.killed_pids
    assert not token_holders(child.token)


async def test_stop_tree_kills_setsid_escaped_grandchild_by_token(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("setsid-grandchild")
    log = log_of(child, tmp_path)
    gc = grandchild_pid(log)
    wait_log(log, "ready")
    assert os.getpgid(gc) != child.pid  # really outside the group
    outcome = await stop_tree(child, grace_s=5)
    assert gc in outcome.killed_pids
    assert not token_holders(child.token)
    assert not psutil.pid_exists(gc) or psutil.Process(gc).status() == psutil.STATUS_ZOMBIE


async def test_kill_tree_kills_at_once(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("fork-grandchild")
    gc = grandchild_pid(log_of(child, tmp_path))
    outcome = await kill_tree(child)
    assert not outcome.graceful
    assert outcome.exit.signal == signal.SIGKILL
    assert {child.pid, gc} <= set(outcome.killed_pids)


async def test_stop_tree_of_already_exited_child(spawned: Spawner) -> None:
    child = spawned("exit", "0")
    await wait_exit(child)
    outcome = await stop_tree(child, grace_s=5)
    assert outcome.graceful and outcome.exit == ExitStatus(code=0, signal=None)
    assert outcome.killed_pids == []


async def test_stop_tree_never_signals_a_reused_pid(spawned: Spawner, tmp_path: Path) -> None:
    bystander = spawned("graceful")
    wait_log(log_of(bystander, tmp_path), "ready")
    stale = ChildProcess("stale", bystander.pid, bystander.create_time - 1000, boot_id(), "no-such-token")
    outcome = await stop_tree(stale, grace_s=0.2)
    assert outcome.killed_pids == []
    assert exit_status_now(bystander) is None
    assert "bye" not in log_of(bystander, tmp_path).read_text()
    assert (await stop_tree(bystander, grace_s=30)).graceful


# --- identity ----------------------------------------------------------------------------------


async def test_check_ours_verdicts_never_signal(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("graceful")
    log = log_of(child, tmp_path)
    wait_log(log, "ready")
    ident = child.identity
    assert check_ours(ident).reason == "ours"
    assert check_ours(ident).adoptable
    reused = ProcessIdentity(ident.pid, ident.create_time - 5, ident.boot_id, ident.token)
    assert (check_ours(reused).adoptable, check_ours(reused).reason) == (False, "pid-reused")
    other_boot = ProcessIdentity(ident.pid, ident.create_time, "another-boot", ident.token)
    assert (check_ours(other_boot).adoptable, check_ours(other_boot).reason) == (False, "other-boot")
    wrong_token = ProcessIdentity(ident.pid, ident.create_time, ident.boot_id, "f" * 32)
    assert (check_ours(wrong_token).adoptable, check_ours(wrong_token).reason) == (False, "token-mismatch")
    # None of the checks touched the process: it is still running and heard no SIGTERM.
    assert exit_status_now(child) is None
    assert "bye" not in log.read_text()
    await stop_tree(child, grace_s=30)
    gone = check_ours(ident)
    assert (gone.adoptable, gone.reason) == (False, "gone")


async def test_adopted_child_can_be_stopped(spawned: Spawner, tmp_path: Path) -> None:
    child = spawned("graceful")
    log = log_of(child, tmp_path)
    wait_log(log, "ready")
    adopted = adopt(child.identity, instance="t")
    outcome = await stop_tree(adopted, grace_s=30)
    assert outcome.graceful
    assert outcome.exit == ExitStatus(code=None, signal=None)  # not our child: code unknown
    assert "bye" in log.read_text()
    await async_wait_until(lambda: child.popen is not None and child.popen.poll() is not None, 10)


async def test_wait_exit_polls_when_pidfd_is_unavailable(
    spawned: Spawner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # macOS has no pidfd_open; exercise the psutil/Popen polling path here.
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    child = spawned("sleep")
    wait_log(log_of(child, tmp_path), "ready")
    waiter = asyncio.create_task(wait_exit(child))
    os.kill(child.pid, signal.SIGKILL)
    assert await asyncio.wait_for(waiter, 10) == ExitStatus(code=None, signal=signal.SIGKILL)
    adopted_parent = spawned("orphan")
    pid = grandchild_pid(log_of(adopted_parent, tmp_path).parent / "t-1.log")
    orphan = adopt(ProcessIdentity(pid, psutil.Process(pid).create_time(), boot_id(), adopted_parent.token))
    waiter = asyncio.create_task(wait_exit(orphan))
    os.kill(pid, signal.SIGKILL)
    assert await asyncio.wait_for(waiter, 10) == ExitStatus(code=None, signal=None)
    await wait_exit(adopted_parent)
