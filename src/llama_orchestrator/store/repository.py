"""`Store`: the daemon's typed interface to `state.db` (L3; the only package that imports sqlite3).

Concurrency design (reliability scenario 16, "Locked SQLite"):

- Writes never block the caller on SQLite. `save_instance`, `record_transition`,
  `record_load_time`, `record_memory_peak`, `hold_down`, `delete_instance` and `prune_events`
  append a payload (`writes`) to one ordered, bounded queue and return; one writer thread (`writer.SerialWriter`)
  owns the write connection and applies the queue in order, retrying `database is locked` with
  backoff for as long as it takes. `health` reports "degraded: database is locked (N writes
  pending)" meanwhile. Only a full queue (10 000 writes) blocks the caller, briefly, and then
  raises `StoreError`.
- Event ids are allocated in memory, seeded from the database at open, under a lock that also
  covers the enqueue, so `record_transition` returns its id at once and ids increase strictly in
  call order across instances (the queue keeps that order on disk). Load-time samples get ids the
  same way so they can be de-duplicated below.
- Reads see the caller's own earlier writes without waiting for them to land: the queue keeps
  each write until its transaction commits, so a read takes a snapshot of the queue first, then
  reads the database (its own connection, guarded by a lock; WAL lets it read while another
  process holds the write lock), and lays the snapshot over the rows. A write that commits
  between the two steps shows up in both and is de-duplicated by key (instance name, event id,
  sample id); nothing can fall in the gap. Writes made concurrently by other threads may or may
  not be visible. A queued `prune_events` is not reflected until it lands.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
from pathlib import Path

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.errors import StoreError
from llama_orchestrator.store.db import DEFAULT_BUSY_TIMEOUT_MS, connect, open_database
from llama_orchestrator.store.migrations import migrate
from llama_orchestrator.store.records import EventRecord, InstanceRecord, LoadTimeRecord
from llama_orchestrator.store.writer import SerialWriter, StoreHealth
from llama_orchestrator.store.writes import (
    INSTANCE_COLUMNS,
    AppendEvent,
    AppendLoadTime,
    DeleteInstance,
    HoldDown,
    PruneEvents,
    RaiseMemoryPeak,
    SaveInstance,
    Write,
    apply_write,
    instances_overlay,
)

#: Samples the learned load time is the median of (robust to one cold-cache outlier).
LOAD_TIME_SAMPLES = 5

class Store:
    """Persisted runtime state, events and learned load times. Build it with `Store.open()`.

    All methods may be called from any thread; the daemon calls them from its event loop.
    Reads run synchronously on the caller's thread (short: indexed queries on a WAL database).
    """

    def __init__(self, path: Path, writer_conn: sqlite3.Connection, reader_conn: sqlite3.Connection,
                 *, quarantined: Path | None, quarantine_reason: str | None,
                 max_pending: int, full_wait_s: float) -> None:
        self.path = path
        #: Where a corrupt database was moved at open, and why (None when it was fine).
        self.quarantined = quarantined
        self.quarantine_reason = quarantine_reason
        self._last_event_id = _scalar(writer_conn, _MAX_ID_SQL.format(table="events"))
        self._last_load_id = _scalar(writer_conn, _MAX_ID_SQL.format(table="load_times"))
        self._id_lock = threading.Lock()
        self._reader = reader_conn
        self._reader.row_factory = sqlite3.Row
        self._reader_lock = threading.Lock()
        self._writer: SerialWriter[Write] = SerialWriter(
            writer_conn, apply_write, max_pending=max_pending, full_wait_s=full_wait_s
        )

    @classmethod
    def open(cls, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
             max_pending: int = 10_000, full_wait_s: float = 1.0) -> Store:
        """Open or create the database at `path`, quarantining a corrupt one, and migrate it.

        Blocks for up to about `busy_timeout_ms` if a migration is due and another process
        holds the database; an up-to-date database opens without taking the write lock.

        Raises:
            StoreError: the directory is not writable, or the database cannot be opened or migrated.
        """
        result = open_database(path, busy_timeout_ms=busy_timeout_ms)
        try:
            migrate(result.conn)
            reader = connect(path, busy_timeout_ms=busy_timeout_ms)
        except StoreError:
            result.conn.close()
            raise
        try:
            return cls(path, result.conn, reader, quarantined=result.quarantined,
                       quarantine_reason=result.reason, max_pending=max_pending, full_wait_s=full_wait_s)
        except sqlite3.Error as exc:
            result.conn.close()
            reader.close()
            raise StoreError(f"cannot read state database {path}: {exc}") from exc

    # -- writes: queued, return at once --------------------------------------------------------

    def save_instance(self, record: InstanceRecord) -> None:
        """Insert or replace the row for `record.name`.

        Raises:
            StoreError: the store is closed or its write queue stayed full (see module docstring).
        """
        self._writer.submit(SaveInstance(record))

    def record_transition(self, instance: str, from_state: InstanceState | str | None,
                          to_state: InstanceState | str, reason: str, at: float) -> int:
        """Record one transition and return its event id (known before the write lands).

        Raises:
            StoreError: the store is closed or its write queue stayed full.
        """
        with self._id_lock:
            event_id = self._last_event_id + 1
            from_value = None if from_state is None else str(from_state)
            self._writer.submit(AppendEvent(EventRecord(event_id, instance, from_value, str(to_state),
                                                         reason, at)))
            self._last_event_id = event_id
        return event_id

    def record_load_time(self, instance: str, model_path: str, seconds: float, at: float) -> None:
        """Record how long one start took to become ready.

        Raises:
            StoreError: the store is closed or its write queue stayed full.
        """
        with self._id_lock:
            sample_id = self._last_load_id + 1
            self._writer.submit(AppendLoadTime(LoadTimeRecord(sample_id, instance, model_path, seconds, at)))
            self._last_load_id = sample_id

    def delete_instance(self, name: str) -> None:
        """Remove the runtime row of `name`; its events and load times stay.

        Raises:
            StoreError: the store is closed or its write queue stayed full.
        """
        self._writer.submit(DeleteInstance(name))

    def hold_down(self, instance: str, held: bool, at: float) -> None:
        """Remember that the user stopped `instance` (`held`), or forget it (they started it): a
        (re)started daemon's autostart leaves held instances down.

        Raises:
            StoreError: the store is closed or its write queue stayed full.
        """
        self._writer.submit(HoldDown(instance, held, at))

    def prune_events(self, keep: int = 100_000) -> None:
        """Delete all but the newest `keep` events (ids are never reused afterwards).

        Raises:
            StoreError: the store is closed or its write queue stayed full.
        """
        self._writer.submit(PruneEvents(max(keep, 0)))

    # -- reads: synchronous, overlaid with queued writes ---------------------------------------

    def get_instance(self, name: str) -> InstanceRecord | None:
        """Return the row for `name`, or None.

        Raises:
            StoreError: the database cannot be read.
        """
        overlay = instances_overlay(self._writer.pending())
        if name in overlay:
            return overlay[name]
        rows = self._read("SELECT * FROM instances WHERE name = ?", (name,))
        return _instance_from_row(rows[0]) if rows else None

    def list_instances(self) -> list[InstanceRecord]:
        """Return every instance row, sorted by name.

        Raises:
            StoreError: the database cannot be read.
        """
        overlay = instances_overlay(self._writer.pending())
        found = {row["name"]: _instance_from_row(row) for row in self._read("SELECT * FROM instances", ())}
        for name, record in overlay.items():
            if record is None:
                found.pop(name, None)
            else:
                found[name] = record
        return [found[name] for name in sorted(found)]

    def list_events(self, instance: str | None = None, after_id: int = 0,
                    limit: int = 1000) -> list[EventRecord]:
        """Return up to `limit` events with id > `after_id` (of `instance`, if given), by id.

        Raises:
            StoreError: the database cannot be read.
        """
        queued = [w.event for w in self._writer.pending() if isinstance(w, AppendEvent)]
        sql = "SELECT * FROM events WHERE id > ?" + (" AND instance = ?" if instance is not None else "")
        params: tuple[object, ...] = (after_id,) if instance is None else (after_id, instance)
        by_id = {row["id"]: _event_from_row(row) for row in self._read(sql + " ORDER BY id LIMIT ?",
                                                                      (*params, limit))}
        for event in queued:
            if event.id > after_id and (instance is None or event.instance == instance):
                by_id[event.id] = event
        return [by_id[i] for i in sorted(by_id)[:max(limit, 0)]]

    def recent_events(self, instance: str | None = None, limit: int = 100) -> list[EventRecord]:
        """Return the newest `limit` events (of `instance`, if given), oldest first."""
        queued = [w.event for w in self._writer.pending() if isinstance(w, AppendEvent)]
        sql = "SELECT * FROM events" + (" WHERE instance = ?" if instance is not None else "")
        params: tuple[object, ...] = () if instance is None else (instance,)
        by_id = {row["id"]: _event_from_row(row) for row in self._read(sql + " ORDER BY id DESC LIMIT ?",
                                                                      (*params, limit))}
        for event in queued:
            if instance is None or event.instance == instance:
                by_id[event.id] = event
        newest = sorted(by_id)[-limit:] if limit > 0 else []
        return [by_id[i] for i in newest]

    def record_memory_peak(self, instance: str, fingerprint: str, size: int, at: float) -> None:
        """Keep `size` bytes as the most `instance` was seen holding under the config `fingerprint`
        (config.footprint.fingerprint), unless a larger figure is kept already.

        Raises:
            StoreError: the store is closed or its write queue stayed full.
        """
        self._writer.submit(RaiseMemoryPeak(instance, fingerprint, size, at))

    def learned_memory_peak(self, instance: str, fingerprint: str) -> int | None:
        """The most `instance` was seen holding under `fingerprint`, in bytes, or None.

        Raises:
            StoreError: the database cannot be read.
        """
        queued = [w.bytes for w in self._writer.pending() if isinstance(w, RaiseMemoryPeak)
                  and (w.instance, w.fingerprint) == (instance, fingerprint)]
        rows = self._read("SELECT bytes FROM memory_peaks WHERE instance = ? AND fingerprint = ?",
                          (instance, fingerprint))
        found = [int(row["bytes"]) for row in rows] + queued
        return max(found) if found else None

    def held_down(self) -> set[str]:
        """The instances the user stopped and has not started since (see `hold_down`).

        Raises:
            StoreError: the database cannot be read.
        """
        # the queue first: a write committed between the two reads is then in the table (applying it
        # again changes nothing), where read the other way round it was in neither
        pending = self._writer.pending()
        held = {row["instance"] for row in self._read("SELECT instance FROM held_down", ())}
        for write in pending:
            if isinstance(write, HoldDown):
                (held.add if write.held else held.discard)(write.instance)
            elif isinstance(write, DeleteInstance):
                held.discard(write.name)
        return held

    def last_event_id(self) -> int:
        """Return the id of the newest event recorded (0 if none ever was)."""
        with self._id_lock:
            return self._last_event_id

    def learned_load_time(self, instance: str, model_path: str) -> float | None:
        """Return the median of the last 5 load times of `instance` with `model_path`, or None.

        Raises:
            StoreError: the database cannot be read.
        """
        queued = [w.sample for w in self._writer.pending() if isinstance(w, AppendLoadTime)
                  and w.sample.instance == instance and w.sample.model_path == model_path]
        rows = self._read("SELECT id, seconds FROM load_times WHERE instance = ? AND model_path = ?"
                          " ORDER BY id DESC LIMIT ?", (instance, model_path, LOAD_TIME_SAMPLES))
        by_id = {int(row["id"]): float(row["seconds"]) for row in rows}
        by_id.update({sample.id: sample.seconds for sample in queued})
        newest = sorted(by_id)[-LOAD_TIME_SAMPLES:]
        return statistics.median(by_id[i] for i in newest) if newest else None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def health(self) -> StoreHealth:
        """Whether writes are landing, and how many are queued (cheap; no I/O)."""
        return self._writer.health

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every write made before this call has landed; False if `timeout_s` passed."""
        return self._writer.flush(timeout_s)

    def close(self, timeout_s: float = 5.0) -> bool:
        """Write what is queued (waiting up to `timeout_s`), stop the writer, close connections.

        Returns False (and logs an error) if queued writes had to be abandoned.
        """
        flushed = self._writer.close(timeout_s)
        with self._reader_lock:
            self._reader.close()
        return flushed

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read(self, sql: str, params: tuple[object, ...]) -> list[sqlite3.Row]:
        try:
            with self._reader_lock:
                return list(self._reader.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read state database {self.path}: {exc}") from exc


_MAX_ID_SQL = (
    "SELECT MAX(COALESCE((SELECT MAX(id) FROM {table}), 0),"
    " COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0))"
)


def _scalar(conn: sqlite3.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def _instance_from_row(row: sqlite3.Row) -> InstanceRecord:
    values = {column: row[column] for column in INSTANCE_COLUMNS}
    try:
        state = InstanceState(values.pop("state"))
    except ValueError as exc:
        raise StoreError(f"instance {row['name']!r} has an unknown state in the state database") from exc
    desired = values.pop("desired")
    if desired not in ("up", "down"):
        raise StoreError(f"instance {row['name']!r} has an unknown desired state {desired!r}")
    return InstanceRecord(state=state, desired=desired, **values)


def _event_from_row(row: sqlite3.Row) -> EventRecord:
    return EventRecord(int(row["id"]), row["instance"], row["from_state"], row["to_state"],
                       row["reason"], float(row["at"]))
