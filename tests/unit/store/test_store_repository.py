"""Store reads and writes: round trips, event order, load times, queued writes and their overlay."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.waiting import wait_until

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.errors import StoreError
from llama_orchestrator.store import EventRecord, InstanceRecord, Store

FULL = InstanceRecord(
    name="alpha", state=InstanceState.READY, updated_at=1700000000.5, desired="up", pid=4242,
    pid_create_time=1700000000.25, boot_id="b00t-1d", token="s3cret", port=8081, host="127.0.0.1",
    started_at=1699999990.0, ready_at=1699999999.0, restarts=3, consecutive_failures=1,
    last_exit_code=137, last_exit_signal=9, last_error="killed by OOM",
)
ZEROES = InstanceRecord(
    name="zero", state=InstanceState.STOPPED, updated_at=0.0, pid=0, pid_create_time=0.0, boot_id="",
    token="", port=0, host="", started_at=0.0, ready_at=0.0, restarts=0, consecutive_failures=0,
    last_exit_code=0, last_exit_signal=0, last_error="",
)
NONES = InstanceRecord(name="none", state=InstanceState.FAILED, updated_at=2.0)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = Store.open(db_path, busy_timeout_ms=50)
    yield opened
    opened.close()


@pytest.fixture
def locker(db_path: Path, store: Store) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock, as another process would (scenario 16)."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    yield conn
    if conn.in_transaction:
        conn.execute("COMMIT")
    conn.close()


def test_instance_round_trip_keeps_none_and_zero_apart(db_path: Path, store: Store) -> None:
    for record in (FULL, ZEROES, NONES):
        store.save_instance(record)
        assert store.get_instance(record.name) == record  # before it lands (from the queue)
    assert store.flush(5)
    for record in (FULL, ZEROES, NONES):
        assert store.get_instance(record.name) == record  # after it lands
    store.close()

    with Store.open(db_path) as reopened:  # and from disk alone
        assert reopened.list_instances() == [FULL, NONES, ZEROES]
        got = reopened.get_instance("alpha")
        assert got is not None and type(got.state) is InstanceState


def test_save_instance_replaces_and_delete_removes_only_the_row(store: Store) -> None:
    store.save_instance(FULL)
    store.record_transition("alpha", None, InstanceState.STARTING, "user", 1.0)
    assert store.flush(5)
    store.save_instance(InstanceRecord(name="alpha", state=InstanceState.STOPPED, updated_at=9.0))
    assert store.get_instance("alpha") == InstanceRecord(name="alpha", state=InstanceState.STOPPED,
                                                          updated_at=9.0)
    store.delete_instance("alpha")

    assert store.get_instance("alpha") is None
    assert store.list_instances() == []
    assert store.flush(5)
    assert store.get_instance("alpha") is None
    assert [e.instance for e in store.list_events()] == ["alpha"]
    assert store.get_instance("never-existed") is None


def test_event_ids_increase_in_call_order_across_instances(store: Store) -> None:
    calls = [("a", None, "starting"), ("b", None, "starting"), ("a", "starting", "ready"),
             ("c", None, "starting"), ("b", "starting", "failed"), ("a", "ready", "stopping")]
    ids = [store.record_transition(name, frm, to, f"reason {i}", float(i))
           for i, (name, frm, to) in enumerate(calls)]

    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert store.last_event_id() == ids[-1]
    expected = [EventRecord(ids[i], name, frm, to, f"reason {i}", float(i))
                for i, (name, frm, to) in enumerate(calls)]
    assert store.list_events() == expected  # queued or landed, same answer
    assert store.flush(5)
    assert store.list_events() == expected
    assert store.list_events(instance="a") == [e for e in expected if e.instance == "a"]
    assert store.list_events(after_id=ids[2]) == expected[3:]
    assert store.list_events(after_id=ids[0], limit=2) == expected[1:3]
    assert store.list_events(instance="nobody") == []


def test_state_enum_is_stored_as_its_value(store: Store) -> None:
    store.record_transition("a", InstanceState.STOPPED, InstanceState.STARTING, "user", 1.0)
    assert store.flush(5)
    event = store.list_events()[0]
    assert (event.from_state, event.to_state) == ("stopped", "starting")
    assert type(event.to_state) is str


def test_event_ids_continue_after_reopen_and_after_pruning_everything(db_path: Path, store: Store) -> None:
    first = [store.record_transition("a", None, "starting", "r", 1.0) for _ in range(5)]
    store.prune_events(keep=2)
    assert store.flush(5)
    assert [e.id for e in store.list_events()] == first[-2:]
    store.prune_events(keep=0)
    store.close()

    with Store.open(db_path) as reopened:
        assert reopened.list_events() == []
        assert reopened.last_event_id() == first[-1]
        assert reopened.record_transition("a", None, "starting", "r", 2.0) == first[-1] + 1


def test_learned_load_time_is_the_median_of_the_last_five(db_path: Path, store: Store) -> None:
    assert store.learned_load_time("a", "/m/x.gguf") is None
    for seconds in (100.0, 1.0, 2.0, 3.0):
        store.record_load_time("a", "/m/x.gguf", seconds, at=seconds)
    assert store.learned_load_time("a", "/m/x.gguf") == 2.5  # median of 100, 1, 2, 3
    assert store.flush(5)
    for seconds in (4.0, 5.0):
        store.record_load_time("a", "/m/x.gguf", seconds, at=seconds)
    store.record_load_time("a", "/m/other.gguf", 50.0, at=1.0)
    store.record_load_time("b", "/m/x.gguf", 70.0, at=1.0)

    assert store.learned_load_time("a", "/m/x.gguf") == 3.0  # last five: 1..5, the 100 aged out
    assert store.learned_load_time("a", "/m/other.gguf") == 50.0
    assert store.learned_load_time("b", "/m/x.gguf") == 70.0
    store.close()
    with Store.open(db_path) as reopened:
        assert reopened.learned_load_time("a", "/m/x.gguf") == 3.0


def test_a_memory_peak_only_rises_and_survives_a_reopen(db_path: Path, store: Store) -> None:
    assert store.learned_memory_peak("a", "f1") is None
    store.record_memory_peak("a", "f1", 300, at=1.0)
    assert store.learned_memory_peak("a", "f1") == 300  # seen while still queued
    assert store.flush(5)
    store.record_memory_peak("a", "f1", 200, at=2.0)  # lower: kept is the most seen
    store.record_memory_peak("a", "f2", 900, at=2.0)  # another config of the same instance
    store.record_memory_peak("b", "f1", 50, at=2.0)
    assert store.learned_memory_peak("a", "f1") == 300
    store.record_memory_peak("a", "f1", 400, at=3.0)
    assert store.learned_memory_peak("a", "f1") == 400
    store.close()
    with Store.open(db_path) as reopened:
        assert [reopened.learned_memory_peak(*key) for key in (("a", "f1"), ("a", "f2"), ("b", "f1"), ("b", "f2"))] \
            == [400, 900, 50, None]


def test_held_down_instances_are_remembered_until_started_or_removed(db_path: Path, store: Store) -> None:
    store.hold_down("a", True, at=1.0)
    store.hold_down("b", True, at=1.0)
    assert store.held_down() == {"a", "b"}  # seen while still queued
    assert store.flush(5)
    store.hold_down("a", False, at=2.0)  # started again
    assert store.held_down() == {"b"}
    store.hold_down("c", True, at=3.0)
    store.delete_instance("c")  # removed: nothing of it stays
    assert store.held_down() == {"b"}
    store.close()
    with Store.open(db_path) as reopened:
        assert reopened.held_down() == {"b"}


def test_load_time_samples_on_disk_are_bounded(db_path: Path, store: Store) -> None:
    for i in range(50):
        store.record_load_time("a", "/m/x.gguf", float(i), at=float(i))
    assert store.flush(5)
    with sqlite3.connect(db_path) as conn:
        count = conn.execute("SELECT COUNT(*) FROM load_times").fetchone()[0]
    conn.close()
    assert count == 20
    assert store.learned_load_time("a", "/m/x.gguf") == 47.0


def test_writes_queue_and_reads_see_them_while_the_database_is_locked(
    store: Store, locker: sqlite3.Connection
) -> None:
    store.save_instance(FULL)
    event_id = store.record_transition("alpha", None, "starting", "user", 1.0)
    store.record_load_time("alpha", "/m/x.gguf", 7.0, at=1.0)

    wait_until(lambda: not store.health.ok, timeout_s=10, message="health never reported the lock")
    health = store.health
    assert "locked" in health.detail and health.pending == 3
    assert health.detail == "degraded: database is locked (3 writes pending)"
    assert not store.flush(0.05)
    assert store.get_instance("alpha") == FULL
    assert store.list_instances() == [FULL]
    assert [e.id for e in store.list_events()] == [event_id]
    assert store.learned_load_time("alpha", "/m/x.gguf") == 7.0

    locker.execute("COMMIT")

    assert store.flush(10)
    assert store.health.ok and store.health.pending == 0
    assert store.get_instance("alpha") == FULL
    assert [e.id for e in store.list_events()] == [event_id]


def test_full_queue_raises_instead_of_dropping(db_path: Path, locker: sqlite3.Connection) -> None:
    with Store.open(db_path, busy_timeout_ms=20, max_pending=3, full_wait_s=0.05) as small:
        ids = [small.record_transition("a", None, "starting", "r", float(i)) for i in range(3)]

        with pytest.raises(StoreError, match="queue is full"):
            small.record_transition("a", None, "starting", "r", 9.0)
        with pytest.raises(StoreError, match="queue is full"):
            small.save_instance(FULL)

        assert small.last_event_id() == ids[-1]  # the refused call did not take an id
        locker.execute("COMMIT")
        assert small.flush(10)
        assert [e.id for e in small.list_events()] == ids
        assert small.record_transition("a", None, "starting", "r", 10.0) == ids[-1] + 1


def test_write_that_can_never_succeed_is_dropped_alone_and_counted(store: Store) -> None:
    store.save_instance(NONES)
    bad = InstanceRecord(name="bad", state=InstanceState.READY, updated_at=1.0,
                         desired="sideways")  # type: ignore[arg-type]  # violates a CHECK constraint
    store.save_instance(bad)
    store.save_instance(ZEROES)

    assert store.flush(5)
    assert [r.name for r in store.list_instances()] == ["none", "zero"]
    assert store.health.ok and store.health.failed_writes == 1


def test_closed_store_refuses_writes_and_close_reports_flush(db_path: Path) -> None:
    store = Store.open(db_path)
    store.save_instance(FULL)
    assert store.close() is True

    with pytest.raises(StoreError, match="closed"):
        store.save_instance(FULL)
    with Store.open(db_path) as reopened:
        assert reopened.get_instance("alpha") == FULL


def test_close_gives_up_after_its_timeout_while_locked(db_path: Path, locker: sqlite3.Connection) -> None:
    store = Store.open(db_path, busy_timeout_ms=20)
    store.save_instance(FULL)

    assert store.close(timeout_s=0.05) is False
    assert not store.health.ok


def test_held_down_sees_a_write_committed_between_its_two_reads(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """held_down() reads the table and the queue of writes not yet committed; the writer thread may
    commit one in between. Whichever read comes first, the commit happens right after it here: the
    write must be seen in one or the other (read table-first, it was in neither: a CI run saw it)."""
    store.hold_down("a", True, at=1.0)
    store.hold_down("b", True, at=1.0)
    assert store.flush(5)
    store.hold_down("a", False, at=2.0)  # queued, not yet committed
    first: list[str] = []
    real_read, real_pending = store._read, store._writer.pending

    def then_commit(name: str, result: object) -> object:
        if not first:
            first.append(name)
            assert store.flush(5)  # the writer commits right after the first read
        return result

    monkeypatch.setattr(store, "_read", lambda *a: then_commit("table", real_read(*a)))
    monkeypatch.setattr(store._writer, "pending", lambda: then_commit("queue", real_pending()))
    assert store.held_down() == {"b"}, first
