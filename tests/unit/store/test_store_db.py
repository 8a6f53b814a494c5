"""Opening the database: pragmas, corrupt files quarantined (scenario 15), unusable directories."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.errors import StoreError
from llama_orchestrator.store import InstanceRecord, Store, open_database


def populated_database(path: Path) -> None:
    """A real state.db with enough rows to span many pages, checkpointed into the main file."""
    with Store.open(path) as store:
        for i in range(200):
            store.save_instance(InstanceRecord(name=f"instance-{i:03}", state=InstanceState.READY,
                                               updated_at=1.0, last_error="x" * 200))
            store.record_transition(f"instance-{i % 3}", None, "starting", "user asked " * 10, 1.0)
        assert store.flush(10)
    assert not Path(f"{path}-wal").exists()  # closing checkpointed everything into state.db


def random_bytes(data: bytes, path: Path) -> bytes:
    return os.urandom(len(data))


def truncated_to_100_bytes(data: bytes, path: Path) -> bytes:
    return data[:100]


def zeroed_page(data: bytes, path: Path) -> bytes:
    """Zero page 2 (the first table's root page), the way a torn write could leave it."""
    page = 4096
    return data[:page] + bytes(page) + data[2 * page:]


@pytest.mark.parametrize("corrupt", [random_bytes, truncated_to_100_bytes, zeroed_page])
def test_corrupt_database_is_quarantined_and_replaced(
    tmp_path: Path, corrupt: Callable[[bytes, Path], bytes]
) -> None:
    path = tmp_path / "state.db"
    populated_database(path)
    damaged = corrupt(path.read_bytes(), path)
    path.write_bytes(damaged)

    result = open_database(path)
    result.conn.close()

    assert result.quarantined is not None
    assert result.quarantined.parent == tmp_path
    assert result.quarantined.name.startswith("state.db.corrupt-")
    assert result.quarantined.read_bytes() == damaged
    assert result.reason
    assert any(words in result.reason for words in
               ("file is not a database", "database disk image is malformed", "quick_check"))


def test_failing_quick_check_alone_quarantines(tmp_path: Path) -> None:
    """A damaged index opens fine and only quick_check notices: that is corruption too."""
    path = tmp_path / "state.db"
    populated_database(path)
    with sqlite3.connect(path) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events_by_instance'").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = path.read_bytes()
    path.write_bytes(data[: (root - 1) * page] + bytes(page) + data[root * page:])

    result = open_database(path)
    result.conn.close()

    assert result.quarantined is not None
    assert result.reason is not None and result.reason.startswith("quick_check: ")
    assert "\n" not in result.reason


def test_store_opens_fresh_after_quarantine_and_reports_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    Path(f"{path}-wal").write_bytes(b"stale wal")
    Path(f"{path}-shm").write_bytes(b"stale shm")
    Path(f"{path}-journal").write_bytes(b"stale journal")

    with Store.open(path) as store:
        assert store.quarantined is not None
        assert store.quarantine_reason is not None and "not a database" in store.quarantine_reason
        assert Path(f"{store.quarantined}-wal").read_bytes() == b"stale wal"
        assert Path(f"{store.quarantined}-shm").exists()  # SQLite may rewrite the index; it is derived
        assert Path(f"{store.quarantined}-journal").read_bytes() == b"stale journal"
        assert not Path(f"{path}-journal").exists()
        assert store.list_instances() == []
        store.save_instance(InstanceRecord(name="a", state=InstanceState.STOPPED, updated_at=5.0))
        assert store.flush(5)
        assert store.health.ok

    with Store.open(path) as reopened:
        assert reopened.quarantined is None
        assert reopened.quarantine_reason is None
        record = reopened.get_instance("a")
        assert record is not None and record.updated_at == 5.0


def test_healthy_database_is_not_quarantined_and_has_the_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    populated_database(path)

    result = open_database(path, busy_timeout_ms=1234)
    conn = result.conn
    try:
        assert result.quarantined is None and result.reason is None
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    finally:
        conn.close()
    assert list(tmp_path.glob("*.corrupt-*")) == []


def test_directory_that_cannot_exist_gives_store_error_naming_the_path(tmp_path: Path) -> None:
    # Root ignores permission bits, so make the parent a regular file: that fails for everyone.
    blocker = tmp_path / "home"
    blocker.write_text("not a directory")
    path = blocker / "state.db"

    with pytest.raises(StoreError) as caught:
        Store.open(path)

    assert str(blocker) in str(caught.value)
    assert caught.value.hint is not None and "writable" in caught.value.hint


def test_missing_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "home" / "state.db"

    with Store.open(path) as store:
        assert store.health.ok
    assert path.is_file()


def test_sqlite_error_at_open_is_translated_and_chained(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.mkdir()  # a directory where the file should be: SQLite cannot open it

    with pytest.raises(StoreError) as caught:
        open_database(path)

    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
