"""The schema, as an ordered list of named migration functions (L3; stdlib and errors only).

Each migration runs in its own transaction together with its row in
`schema_migrations(version, name, applied_at)`, so a crash leaves the database at a whole version.
Append new migrations at the end; never edit or reorder one that has shipped.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from llama_orchestrator.errors import StoreError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _create_instances(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE instances (
            name TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            desired TEXT NOT NULL DEFAULT 'down' CHECK (desired IN ('up', 'down')),
            pid INTEGER,
            pid_create_time REAL,
            boot_id TEXT,
            token TEXT,
            port INTEGER,
            host TEXT,
            started_at REAL,
            ready_at REAL,
            restarts INTEGER NOT NULL DEFAULT 0,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            last_exit_code INTEGER,
            last_exit_signal INTEGER,
            last_error TEXT,
            updated_at REAL NOT NULL
        )
        """
    )


def _create_events(conn: sqlite3.Connection) -> None:
    # AUTOINCREMENT: sqlite_sequence remembers the highest id ever used, so ids are never reused
    # after prune_events() empties the table (clients page with `after_id`).
    conn.execute(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            instance TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            reason TEXT NOT NULL,
            at REAL NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX events_by_instance ON events (instance, id)")


def _create_load_times(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE load_times (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            instance TEXT NOT NULL,
            model_path TEXT NOT NULL,
            seconds REAL NOT NULL,
            at REAL NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX load_times_by_model ON load_times (instance, model_path, id)")


def _create_memory_peaks(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE memory_peaks (
            instance TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (instance, fingerprint)
        )
        """
    )


def _create_held_down(conn: sqlite3.Connection) -> None:
    # Instances the user stopped (`stop`, `down`) and has not started since: the autostart of a
    # (re)started daemon leaves them down, as Docker's `unless-stopped` does. A table of its own:
    # an instance's row is replaced whole at every save.
    conn.execute("CREATE TABLE held_down (instance TEXT PRIMARY KEY, at REAL NOT NULL)")


def _add_instances_command(conn: sqlite3.Connection) -> None:
    # The command a child was spawned with: the next daemon compares an adopted child's config
    # with it, not with the argv the OS shows (after a wrapper script's `exec`, the real server's).
    # NULL in rows from before: that daemon falls back to the OS's argv.
    conn.execute("ALTER TABLE instances ADD COLUMN command TEXT")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create_instances", _create_instances),
    Migration(2, "create_events", _create_events),
    Migration(3, "create_load_times", _create_load_times),
    Migration(4, "create_memory_peaks", _create_memory_peaks),
    Migration(5, "create_held_down", _create_held_down),
    Migration(6, "add_instances_command", _add_instances_command),
)
LATEST_VERSION = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    """Return the highest applied migration version (0 for a blank database).

    Raises:
        StoreError: the database cannot be read.
    """
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
            return 0
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the state database's schema version: {exc}") from exc
    return int(row[0]) if row is not None and row[0] is not None else 0


def migrate(conn: sqlite3.Connection, *, target: int = LATEST_VERSION) -> list[str]:
    """Apply every migration above the current version up to `target`; return the names applied.

    `conn` must be in autocommit mode (`isolation_level=None`). Reads first and writes nothing
    when the schema is current, so opening an up-to-date database never waits for a write lock.

    Raises:
        StoreError: a migration failed (it is rolled back; earlier ones stay applied), or the
            database is newer than this program.
    """
    version = current_version(conn)
    if version > LATEST_VERSION:
        raise StoreError(
            f"the state database is at schema version {version}, newer than this program "
            f"understands ({LATEST_VERSION})",
            hint="upgrade llama-orchestrator, or move state.db aside to start fresh",
        )
    applied: list[str] = []
    for migration in MIGRATIONS:
        if migration.version <= version or migration.version > target:
            continue
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            migration.apply(conn)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise StoreError(
                f"state database migration {migration.version} ({migration.name}) failed: {exc}"
            ) from exc
        applied.append(migration.name)
    return applied


def _rollback(conn: sqlite3.Connection) -> None:
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:  # the failed migration is what the caller needs to hear about
        logger.warning("state database: rollback after a failed migration failed: %s", exc)
