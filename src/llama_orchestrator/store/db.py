"""Open the state database: connection settings, the corruption check and quarantine (L3).

`open_database()` is the one way a `sqlite3.Connection` to `state.db` is made. It turns on WAL
(readers never wait for the writer), `synchronous=NORMAL` (durable enough with WAL, and no fsync
per transition), `foreign_keys=ON` and a `busy_timeout`, then runs `PRAGMA quick_check`.

A corrupt file (reliability scenario 15: "file is not a database", "database disk image is
malformed", or a quick_check that is not "ok") is never fatal: it is renamed to
`state.db.corrupt-<UTC timestamp>` together with its `-wal`/`-shm`/`-journal` files, a fresh
database is created, and `OpenResult` says so, so the daemon can log loudly and show it in status.
The check reads the header and runs quick_check read-only first, so the quarantined copy keeps
its -wal (a read-write open of a bad file deletes it). A state
directory that cannot be written is fatal: `StoreError` naming the path and what to do.

Imports only the stdlib and `llama_orchestrator.errors`; every `sqlite3.Error` leaves as `StoreError`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llama_orchestrator.errors import StoreError

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_MS = 5000

# Primary result codes (https://www.sqlite.org/rescode.html); extended codes keep them in the low byte.
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26

_SQLITE_MAGIC = b"SQLite format 3\x00"
_CORRUPT_MESSAGES = ("file is not a database", "database disk image is malformed")
_WRITABLE_HINT = "make the directory writable, or point --home / LLAMA_ORCH_HOME at a writable directory"


@dataclass(frozen=True, slots=True)
class OpenResult:
    """An open connection, and whether a corrupt file had to be moved aside to get it."""

    conn: sqlite3.Connection
    quarantined: Path | None = None
    reason: str | None = None


def is_busy(exc: sqlite3.Error) -> bool:
    """Say whether `exc` means another connection holds a lock (worth retrying)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def is_corruption(exc: sqlite3.Error) -> bool:
    """Say whether `exc` means the file is not a usable database (quarantine, do not retry)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return True
    return any(message in str(exc) for message in _CORRUPT_MESSAGES)


def connect(path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open one more connection to an existing, already checked database (autocommit mode).

    The connection may be used from any thread; the caller serialises use (one owner or a lock).

    Raises:
        StoreError: the file cannot be opened or configured.
    """
    try:
        conn = _configure(_raw_connect(path), busy_timeout_ms)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open state database {path}: {exc}", hint=_WRITABLE_HINT) from exc
    return conn


def open_database(path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> OpenResult:
    """Open (creating if needed) the database at `path`, quarantining it first if it is corrupt.

    Blocks for at most about `busy_timeout_ms` if another process holds a lock.

    Raises:
        StoreError: the directory is missing and cannot be created, is not writable, or the file
            cannot be opened for a reason other than corruption (the message names the path).
    """
    _ensure_writable_directory(path.parent)
    try:
        return OpenResult(_open_checked(path, busy_timeout_ms))
    except _CorruptDatabase as corrupt:
        reason = corrupt.reason
    moved_to = quarantine(path)
    logger.error("state database %s is corrupt (%s); moved it to %s and started a fresh one",
                 path, reason, moved_to)
    try:
        return OpenResult(_open_checked(path, busy_timeout_ms), quarantined=moved_to, reason=reason)
    except _CorruptDatabase as still_corrupt:  # a fresh file cannot be corrupt unless the disk is failing
        raise StoreError(f"a fresh state database at {path} is corrupt too: {still_corrupt.reason}",
                         hint="check the disk holding the state directory") from still_corrupt


def quarantine(path: Path) -> Path:
    """Rename `path` (and its -wal/-shm/-journal) to `<name>.corrupt-<UTC timestamp>` and return the new path.

    Raises:
        StoreError: the rename failed.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():  # two quarantines in one microsecond: keep both
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
        counter += 1
    try:
        # -journal too: a stale rollback journal beside a fresh file would be "rolled back" into it.
        for suffix in ("-wal", "-shm", "-journal"):
            companion = path.with_name(path.name + suffix)
            if companion.exists():
                companion.rename(target.with_name(target.name + suffix))
        if path.exists():
            path.rename(target)
    except OSError as exc:
        raise StoreError(f"cannot move corrupt state database {path} aside: {exc}",
                         hint=_WRITABLE_HINT) from exc
    return target


class _CorruptDatabase(Exception):
    """Internal: the file at hand is corrupt; `reason` is what SQLite said."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ensure_writable_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create state directory {directory}: {exc.strerror or exc}",
                         hint=_WRITABLE_HINT) from exc
    if not directory.is_dir():  # mkdir(exist_ok=True) accepts an existing non-directory on some paths
        raise StoreError(f"state directory {directory} is not a directory", hint=_WRITABLE_HINT)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreError(f"state directory {directory} is not writable", hint=_WRITABLE_HINT)


def _raw_connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: autocommit; transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    # check_same_thread=False: the writer thread takes over the connection opened here.
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> sqlite3.Connection:
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error:
        conn.close()
        raise
    if mode is None or str(mode[0]).lower() != "wal":
        logger.warning("state database did not switch to WAL (journal_mode=%s)", mode)
    return conn


def _open_checked(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """Check then open `path`; raise `_CorruptDatabase` if it is corrupt, StoreError otherwise."""
    if not _has_sqlite_header(path):
        raise _CorruptDatabase("file is not a database")
    checked = not path.exists() or _quick_check_read_only(path, busy_timeout_ms)
    conn: sqlite3.Connection | None = None
    try:
        conn = _configure(_raw_connect(path), busy_timeout_ms)
        if not checked:
            _quick_check(conn)
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        if is_corruption(exc):
            raise _CorruptDatabase(str(exc)) from exc
        raise StoreError(f"cannot open state database {path}: {exc}", hint=_WRITABLE_HINT) from exc
    except _CorruptDatabase:
        if conn is not None:
            conn.close()
        raise
    return conn


def _has_sqlite_header(path: Path) -> bool:
    """False only for a non-empty file that does not start with SQLite's magic string.

    Checked before SQLite opens the file, so nothing (not even a read-write fallback) touches
    the -wal of a file that plainly is not a database.
    """
    if not path.is_file():
        return True  # missing: SQLite creates it; anything else: SQLite says what is wrong
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"cannot read state database {path}: {exc.strerror or exc}",
                         hint=_WRITABLE_HINT) from exc
    return head in (b"", _SQLITE_MAGIC)


def _quick_check_read_only(path: Path, busy_timeout_ms: int) -> bool:
    """Run quick_check on a read-only connection; False if that needs a write (check read-write then).

    Read-only first so that checking a corrupt file changes nothing worth keeping: a read-write
    open of a file that is "not a database" deletes its -wal on close, and the -wal may hold the
    last transactions someone wants to recover from the quarantined copy. A hot rollback journal
    can only be replayed by a writer, hence the fallback.
    """
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open state database {path}: {exc}", hint=_WRITABLE_HINT) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _quick_check(conn)
    except sqlite3.Error as exc:
        if is_corruption(exc):
            raise _CorruptDatabase(str(exc)) from exc
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == SQLITE_READONLY:
            return False
        raise StoreError(f"cannot check state database {path}: {exc}", hint=_WRITABLE_HINT) from exc
    finally:
        conn.close()
    return True


def _quick_check(conn: sqlite3.Connection) -> None:
    """Raise `_CorruptDatabase` unless `PRAGMA quick_check` says exactly "ok"."""
    rows = conn.execute("PRAGMA quick_check").fetchall()
    problems = [line for row in rows for line in str(row[0]).splitlines() if not line.startswith("***")]
    if problems != ["ok"]:
        summary = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise _CorruptDatabase("quick_check: " + summary)
