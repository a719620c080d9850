"""A copied `vigil.db` must hold its data, and one copied without its `-wal` must say so.

SQLite keeps recent commits in `vigil.db-wal` until a checkpoint moves them into `vigil.db`; the
last connection to close checkpoints and deletes the -wal, but only if it may write. So a writer
checkpoints (TRUNCATE) when it closes, and closes after the process's read-only connection.

While a writer has the log open, `meta.wal_in_use` is '1' in the main file itself (set and
checkpointed at open, re-asserted every few seconds). A main file that says '1' with no -wal
beside it was copied or moved without its newest commits: it is refused with that reason rather
than read as if nothing were missing. (After a crash the -wal is still there, so no false alarm;
a copy taken within seconds of another writer closing may go unnoticed.) A file not in WAL mode
(`VACUUM INTO` writes one) has no -wal to lose and is never refused; a copy made with SQLite's
backup API keeps WAL mode and the flag, and cannot be told apart from a bad copy.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
from pathlib import Path

from ...errors import SchemaError

__all__ = ["wal_path", "check", "mark", "checkpoint_and_clear"]

_KEY = "wal_in_use"


def wal_path(path: Path) -> Path:
    return Path(f"{path}-wal")


_at_exit: dict[Path, object] = {}


def clear_at_exit(path: Path) -> None:
    """A process that ends without closing its store (an unhandled error) still has its
    connections closed by Python, and SQLite's last close checkpoints and removes the -wal: the
    flag must not survive that, or a complete file would be refused as a bad copy."""
    if path in _at_exit:
        return

    def clear() -> None:
        try:
            conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
            try:
                checkpoint_and_clear(conn)
            finally:
                conn.close()
        except sqlite3.Error:
            pass

    _at_exit[path] = clear
    atexit.register(clear)


def forget(path: Path) -> None:
    clear = _at_exit.pop(path, None)
    if clear is not None:
        atexit.unregister(clear)


def check(path: Path) -> None:
    """Before any connection: connecting in WAL mode creates a -wal, hiding that one was lost.
    The main file is read as immutable (no -wal, no -shm, no locks)."""
    if not path.exists() or path.stat().st_size == 0 or wal_path(path).exists():
        return
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) == 20 and header[18] != 2:
        # Not in WAL mode (bytes 18-19 of the header say 1), so it has no -wal to have lost:
        # what `VACUUM INTO` writes, a complete copy of a log in use.
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            in_use = _flag(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return  # not a database we can read this way: the normal open says why
    if in_use and not os.environ.get("VIGIL_IGNORE_MISSING_WAL"):
        raise SchemaError(
            f"{path} was in use with a write-ahead log ({wal_path(path).name}) that is not beside "
            f"it: it was copied or moved without it, so its newest events are missing; copy "
            f"{wal_path(path).name} too, or close every vigil on the original and copy again, or "
            f"back a log in use up with `VACUUM INTO` or `vigil copy` (a copy by SQLite's backup "
            f"API is complete but looks the same: VIGIL_IGNORE_MISSING_WAL=1 opens it anyway)"
        )


def _flag(conn: sqlite3.Connection) -> bool:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (_KEY,)).fetchone()
    except sqlite3.OperationalError:  # no meta table yet: a new or foreign file
        return False
    return bool(row) and row[0] == "1"


def mark(conn: sqlite3.Connection) -> None:
    """Say '1' in the main file (idempotent: writes only if it does not already)."""
    if not _flag(conn):
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (_KEY,))
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def checkpoint_and_clear(conn: sqlite3.Connection) -> None:
    """On a writer's close: move every commit into the main file and clear the flag."""
    try:
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, '0')", (_KEY,))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # another process holds the log busy: its own close will checkpoint
