"""Migrations: from a blank database and from every older schema version to the latest."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from llama_orchestrator.errors import StoreError
from llama_orchestrator.store.migrations import LATEST_VERSION, MIGRATIONS, current_version, migrate


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    yield connection
    connection.close()


def schema(conn: sqlite3.Connection) -> dict[str, list[tuple[str, str, int]]]:
    """Every table's columns as (name, declared type, not null), plus the index names."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    result = {t: [(c[1], c[2], c[3]) for c in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    result["<indexes>"] = [(r[0], "", 0) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")]
    return result


def test_migrate_blank_database_applies_every_migration_in_order(conn: sqlite3.Connection) -> None:
    applied = migrate(conn)

    assert applied == [m.name for m in MIGRATIONS]
    assert current_version(conn) == LATEST_VERSION
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]
    columns = schema(conn)
    assert [c[0] for c in columns["instances"]] == [
        "name", "state", "desired", "pid", "pid_create_time", "boot_id", "token", "port", "host",
        "started_at", "ready_at", "restarts", "consecutive_failures", "last_exit_code",
        "last_exit_signal", "last_error", "updated_at", "command",
    ]
    assert [c[0] for c in columns["events"]] == ["id", "instance", "from_state", "to_state", "reason", "at"]
    assert [c[0] for c in columns["load_times"]] == ["id", "instance", "model_path", "seconds", "at"]
    assert [c[0] for c in columns["memory_peaks"]] == ["instance", "fingerprint", "bytes", "at"]
    assert [c[0] for c in columns["held_down"]] == ["instance", "at"]
    assert [i[0] for i in columns["<indexes>"]] == [
        "events_by_instance", "load_times_by_model", "sqlite_autoindex_held_down_1", "sqlite_autoindex_instances_1",
        "sqlite_autoindex_memory_peaks_1",
    ]


def test_migrate_is_a_no_op_when_current(conn: sqlite3.Connection) -> None:
    migrate(conn)
    before = schema(conn)

    assert migrate(conn) == []
    assert schema(conn) == before


def _seed(conn: sqlite3.Connection, version: int) -> None:
    """Put rows into the tables that exist at `version`, to check the upgrade keeps them."""
    if version >= 1:
        conn.execute("INSERT INTO instances (name, state, updated_at) VALUES ('a', 'ready', 1.0)")
    if version >= 2:
        conn.execute("INSERT INTO events (instance, from_state, to_state, reason, at)"
                     " VALUES ('a', NULL, 'starting', 'user', 2.0)")


@pytest.mark.parametrize("old_version", range(LATEST_VERSION))
def test_migrate_from_each_older_version_reaches_the_blank_schema(old_version: int) -> None:
    blank = sqlite3.connect(":memory:", isolation_level=None)
    migrate(blank)
    old = sqlite3.connect(":memory:", isolation_level=None)
    migrate(old, target=old_version)
    assert current_version(old) == old_version
    _seed(old, old_version)

    applied = migrate(old)

    assert applied == [m.name for m in MIGRATIONS if m.version > old_version]
    assert schema(old) == schema(blank)
    if old_version >= 1:
        # a row from before the command was recorded: NULL, so the daemon reads the OS's argv
        assert old.execute("SELECT name, state, command FROM instances").fetchall() == [("a", "ready", None)]
    if old_version >= 2:
        assert old.execute("SELECT id, to_state FROM events").fetchall() == [(1, "starting")]
    blank.close()
    old.close()


def test_failed_migration_rolls_back_and_keeps_earlier_versions(conn: sqlite3.Connection) -> None:
    migrate(conn, target=1)
    conn.execute("CREATE TABLE events (x)")  # what migration 2 is about to create

    with pytest.raises(StoreError, match="create_events") as caught:
        migrate(conn)

    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert current_version(conn) == 1
    assert not conn.in_transaction


def test_database_newer_than_the_program_is_refused(conn: sqlite3.Connection) -> None:
    migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'from_the_future', 0)", (LATEST_VERSION + 1,))

    with pytest.raises(StoreError, match="newer than this program"):
        migrate(conn)
