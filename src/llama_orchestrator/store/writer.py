"""One writer thread that applies queued writes to SQLite in order and never gives up on a lock (L3).

Why a thread: a write can wait `busy_timeout` (5 s) or much longer when another process holds
the database (reliability scenario 16). The daemon's asyncio loop must not wait with it, so
`submit()` only appends to an ordered, bounded in-memory queue and returns.

Guarantees:
- Writes are applied in submission order, several per transaction, exactly once.
- `database is locked` / busy and other `OperationalError`s (disk full, I/O error) are retried
  with backoff, forever, in order: nothing is dropped or reordered; `health` says "degraded"
  meanwhile. Errors that retrying cannot fix (`IntegrityError`, `ProgrammingError`, ...: a bug)
  drop that one write, log it at ERROR and count it in `health.failed_writes`, so a bad write
  never wedges the queue or kills the thread.
- A queued write stays in the queue (visible to `pending()`) until its transaction commits, so
  readers can overlay exactly the writes that have not landed yet.
- When the queue holds `max_pending` writes, `submit()` blocks up to `full_wait_s`, then raises
  `StoreError`: no silent drops.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from llama_orchestrator.errors import StoreError
from llama_orchestrator.store.db import is_busy

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 500
_BACKOFF_FIRST_S = 0.02
_BACKOFF_MAX_S = 1.0
_PERMANENT_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError,
                     sqlite3.InterfaceError, sqlite3.NotSupportedError)


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """Whether writes are landing; `detail` is what status shows (e.g. "degraded: database is locked")."""

    ok: bool
    detail: str
    pending: int
    failed_writes: int = 0


class SerialWriter(Generic[T]):
    """Apply payloads of type `T` to `conn` with `apply(conn, payload)`, in order, on one thread.

    The writer owns `conn` from construction on; nobody else may use it.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        apply: Callable[[sqlite3.Connection, T], None],
        *,
        max_pending: int = 10_000,
        full_wait_s: float = 1.0,
        name: str = "store-writer",
    ) -> None:
        self._conn = conn
        self._apply = apply
        self._max_pending = max_pending
        self._full_wait_s = full_wait_s
        self._cond = threading.Condition()
        self._queue: deque[T] = deque()  # head = oldest; popped only after its commit
        self._problem: str | None = None  # why the last attempt failed; None once a write lands
        self._failed_writes = 0
        self._committed = 0  # writes committed (or dropped as impossible) since start
        self._closing = False  # no more submits; drain what is queued
        self._abandon = False  # stop even if writes are still queued (close timed out)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- caller side (any thread) ---------------------------------------------------------------

    def submit(self, payload: T) -> None:
        """Queue `payload`; return at once unless the queue is full.

        Raises:
            StoreError: the writer is closed, or the queue stayed full for `full_wait_s`.
        """
        with self._cond:
            self._raise_if_closed()
            if len(self._queue) >= self._max_pending:
                deadline = time.monotonic() + self._full_wait_s
                while len(self._queue) >= self._max_pending and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StoreError(
                            f"state database write queue is full ({len(self._queue)} writes pending; "
                            f"{self._problem or 'writer is behind'})",
                            hint="another process may be holding state.db locked",
                        )
                    self._cond.wait(remaining)
                self._raise_if_closed()
            self._queue.append(payload)
            self._cond.notify_all()

    def pending(self) -> list[T]:
        """Return a copy of the writes not yet committed, oldest first."""
        with self._cond:
            return list(self._queue)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every write submitted before this call has committed; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            # Writes behind the current tail may be added meanwhile; waiting for the queue to be
            # shorter than "everything after our tail" is the same as waiting for our tail.
            target = self._committed + len(self._queue)
            while self._committed < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
            return True

    @property
    def health(self) -> StoreHealth:
        with self._cond:
            pending = len(self._queue)
            if not self._thread.is_alive() and not self._closing:
                return StoreHealth(False, f"degraded: writer thread stopped ({pending} writes pending)",
                                   pending, self._failed_writes)
            if self._problem is not None:
                return StoreHealth(False, f"degraded: {self._problem} ({pending} writes pending)",
                                   pending, self._failed_writes)
            if self._closing:
                return StoreHealth(pending == 0, f"closed ({pending} writes pending)", pending,
                                   self._failed_writes)
            return StoreHealth(True, "ok", pending, self._failed_writes)

    def close(self, timeout_s: float) -> bool:
        """Stop accepting writes, write what is queued (up to `timeout_s`), stop the thread.

        Returns True when every queued write landed; otherwise logs how many were lost.
        """
        flushed = self.flush(timeout_s)
        with self._cond:
            self._closing = True
            lost = len(self._queue)
            if not flushed:
                self._abandon = True
            self._cond.notify_all()
        if lost:
            logger.error("state database: %d queued writes not written at close (%s)",
                         lost, self._problem or "timed out")
        # The thread may be inside one busy_timeout wait; it checks _abandon right after.
        self._thread.join()
        return flushed and lost == 0

    def _raise_if_closed(self) -> None:
        if self._closing:
            raise StoreError("state database is closed")

    # -- writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._conn.close()

    def _loop(self) -> None:
        delay = _BACKOFF_FIRST_S
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._abandon or not self._queue:
                    return
                batch = [self._queue[i] for i in range(min(len(self._queue), MAX_BATCH))]
            error = self._write_batch(batch)
            if error is None:
                self._settle(len(batch), problem=None)
                delay = _BACKOFF_FIRST_S
                continue
            if isinstance(error, _PERMANENT_ERRORS):
                self._write_one_by_one(batch)
                continue
            with self._cond:
                self._problem = "database is locked" if is_busy(error) else str(error)
                # Back off, but wake at once if close() gives up on us.
                self._cond.wait_for(lambda: self._abandon, timeout=delay)
                if self._abandon:
                    return
            delay = min(delay * 2, _BACKOFF_MAX_S)

    def _write_batch(self, batch: list[T]) -> sqlite3.Error | None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for payload in batch:
                self._apply(self._conn, payload)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            return exc
        return None

    def _write_one_by_one(self, batch: list[T]) -> None:
        """Find the bad write(s) in a batch that hit a permanent error; land the rest in order."""
        for payload in batch:
            error = self._write_batch([payload])
            if error is None:
                self._settle(1, problem=None)
            elif isinstance(error, _PERMANENT_ERRORS):
                logger.error("state database: dropped a write that cannot succeed (%r): %s", payload, error)
                with self._cond:
                    self._failed_writes += 1
                self._settle(1, problem=None)
            else:
                return  # transient again: the main loop retries from here, in order

    def _settle(self, count: int, *, problem: str | None) -> None:
        with self._cond:
            for _ in range(count):
                self._queue.popleft()
            self._committed += count
            self._problem = problem
            self._cond.notify_all()

    def _rollback(self) -> None:
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the transaction is gone either way; the retry starts afresh
            logger.warning("state database: rollback failed: %s", exc)
