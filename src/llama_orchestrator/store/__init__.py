"""The SQLite state store: runtime rows, transition events, learned load times (L3).

The only package that imports sqlite3. The daemon uses `Store`; see `repository` for the
concurrency design (queued writes on one writer thread, reads overlaid with queued writes).
"""

from __future__ import annotations

from llama_orchestrator.store.db import OpenResult, open_database
from llama_orchestrator.store.records import Desired, EventRecord, InstanceRecord, LoadTimeRecord
from llama_orchestrator.store.repository import Store
from llama_orchestrator.store.writer import StoreHealth

__all__ = [
    "Desired",
    "EventRecord",
    "InstanceRecord",
    "LoadTimeRecord",
    "OpenResult",
    "Store",
    "StoreHealth",
    "open_database",
]
