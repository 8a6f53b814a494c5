"""Scenario 16: another process holds state.db with BEGIN EXCLUSIVE; the store queues and recovers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.procs import marked_env
from tests.support.waiting import wait_until

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.store import InstanceRecord, Store

pytestmark = pytest.mark.integration

# Holds the write lock until a line arrives on stdin, then commits and exits.
LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA busy_timeout = 10000")
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
conn.close()
print("released", flush=True)
"""


class LockHolder:
    """A separate Python process holding `BEGIN EXCLUSIVE` on a database until `release()`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(path)], env=marked_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the lock is held (or the helper died)
        assert line.strip() == "locked", f"lock holder failed: {line!r} {self.proc.stderr.read()!r}"  # type: ignore[union-attr]

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        assert self.proc.wait(timeout=30) == 0

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def holders() -> Iterator[list[LockHolder]]:
    started: list[LockHolder] = []
    yield started
    for holder in started:
        holder.end()


def rows_on_disk(path: Path) -> tuple[list[str], list[tuple[int, str, str]]]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM instances ORDER BY name")]
        events = conn.execute("SELECT id, instance, to_state FROM events ORDER BY id").fetchall()
    finally:
        conn.close()
    return names, events


def test_locked_database_queues_writes_then_flushes_them_in_order(
    tmp_path: Path, holders: list[LockHolder]
) -> None:
    path = tmp_path / "state.db"
    with Store.open(path, busy_timeout_ms=100) as store:
        store.save_instance(InstanceRecord(name="before", state=InstanceState.STOPPED, updated_at=0.0))
        assert store.flush(10)
        holders.append(LockHolder(path))

        expected_events = []
        for i in range(30):
            name = ("a", "b", "c")[i % 3]
            state = list(InstanceState)[i % len(InstanceState)]
            event_id = store.record_transition(name, None, state, f"step {i}", float(i))
            expected_events.append((event_id, name, str(state)))
            store.save_instance(InstanceRecord(name=name, state=state, updated_at=float(i), restarts=i))

        # The calls returned although nothing can land: the writes are queued, not written.
        assert not store.flush(0.2)
        wait_until(lambda: not store.health.ok, timeout_s=10, message="health never reported the lock")
        health = store.health
        assert "locked" in health.detail and health.pending == 60
        assert rows_on_disk(path) == (["before"], [])
        # Reads still answer, with the queued writes (in-memory state stays authoritative).
        assert [r.name for r in store.list_instances()] == ["a", "b", "before", "c"]
        assert [(e.id, e.instance, e.to_state) for e in store.list_events()] == expected_events
        c = store.get_instance("c")
        assert c is not None and c.restarts == 29

        holders[0].release()

        assert store.flush(10)
        assert store.health.ok and store.health.pending == 0
        assert rows_on_disk(path) == (["a", "b", "before", "c"], expected_events)


def test_store_opens_while_another_process_holds_the_lock(tmp_path: Path, holders: list[LockHolder]) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()  # schema current: opening again needs no write lock
    holders.append(LockHolder(path))

    with Store.open(path, busy_timeout_ms=100) as store:
        event_id = store.record_transition("a", None, "starting", "daemon restarted", 1.0)
        assert [e.id for e in store.list_events()] == [event_id]
        wait_until(lambda: "locked" in store.health.detail, timeout_s=10, message="lock not reported")

        holders[0].release()

        assert store.flush(10)
        assert store.health.ok
    assert rows_on_disk(path) == ([], [(event_id, "a", "starting")])
