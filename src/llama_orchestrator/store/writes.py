"""The store's writes as queued payloads, and how the writer thread applies each one (L3).

    store._writer.submit(SaveInstance(record))   # queued by `Store`, applied in order by
    apply_write(conn, write)                     # `writer.SerialWriter` inside its transaction
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.store.records import EventRecord, InstanceRecord, LoadTimeRecord

#: Samples kept on disk per (instance, model_path).
LOAD_TIME_KEEP = 20

INSTANCE_COLUMNS = tuple(f.name for f in fields(InstanceRecord))


@dataclass(frozen=True, slots=True)
class SaveInstance:
    record: InstanceRecord


@dataclass(frozen=True, slots=True)
class DeleteInstance:
    name: str


@dataclass(frozen=True, slots=True)
class AppendEvent:
    event: EventRecord


@dataclass(frozen=True, slots=True)
class AppendLoadTime:
    sample: LoadTimeRecord


@dataclass(frozen=True, slots=True)
class RaiseMemoryPeak:
    instance: str
    fingerprint: str
    bytes: int
    at: float


@dataclass(frozen=True, slots=True)
class HoldDown:
    instance: str
    held: bool
    at: float


@dataclass(frozen=True, slots=True)
class PruneEvents:
    keep: int


Write = SaveInstance | DeleteInstance | AppendEvent | AppendLoadTime | RaiseMemoryPeak | HoldDown | PruneEvents


def apply_write(conn: sqlite3.Connection, write: Write) -> None:
    """Apply one queued write inside the writer's open transaction (writer thread only)."""
    match write:
        case SaveInstance(record):
            values = tuple(getattr(record, column) for column in INSTANCE_COLUMNS)
            conn.execute(
                f"INSERT OR REPLACE INTO instances ({', '.join(INSTANCE_COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in INSTANCE_COLUMNS)})",
                tuple(str(v) if isinstance(v, InstanceState) else v for v in values),
            )
        case DeleteInstance(name):
            conn.execute("DELETE FROM instances WHERE name = ?", (name,))
            conn.execute("DELETE FROM held_down WHERE instance = ?", (name,))
        case HoldDown(instance, held, at):
            if held:
                conn.execute("INSERT OR REPLACE INTO held_down (instance, at) VALUES (?, ?)", (instance, at))
            else:
                conn.execute("DELETE FROM held_down WHERE instance = ?", (instance,))
        case AppendEvent(event):
            conn.execute(
                "INSERT INTO events (id, instance, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                (event.id, event.instance, event.from_state, event.to_state, event.reason, event.at),
            )
        case AppendLoadTime(sample):
            conn.execute(
                "INSERT INTO load_times (id, instance, model_path, seconds, at) VALUES (?, ?, ?, ?, ?)",
                (sample.id, sample.instance, sample.model_path, sample.seconds, sample.at),
            )
            conn.execute(
                "DELETE FROM load_times WHERE instance = ? AND model_path = ? AND id NOT IN"
                " (SELECT id FROM load_times WHERE instance = ? AND model_path = ? ORDER BY id DESC LIMIT ?)",
                (sample.instance, sample.model_path, sample.instance, sample.model_path, LOAD_TIME_KEEP),
            )
        case RaiseMemoryPeak(instance, fingerprint, size, at):
            conn.execute(
                "INSERT INTO memory_peaks (instance, fingerprint, bytes, at) VALUES (?, ?, ?, ?) ON CONFLICT"
                " (instance, fingerprint) DO UPDATE SET bytes = MAX(bytes, excluded.bytes), at = excluded.at",
                (instance, fingerprint, size, at),
            )
        case PruneEvents(keep):
            conn.execute(
                "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (keep,),
            )


def instances_overlay(pending: list[Write]) -> dict[str, InstanceRecord | None]:
    """Fold queued instance writes, oldest first, into name -> latest record (None = deleted)."""
    overlay: dict[str, InstanceRecord | None] = {}
    for write in pending:
        if isinstance(write, SaveInstance):
            overlay[write.record.name] = write.record
        elif isinstance(write, DeleteInstance):
            overlay[write.name] = None
    return overlay
