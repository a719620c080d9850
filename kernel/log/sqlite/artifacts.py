"""The artifacts table in SQLite: `put` on the writer's thread (its own transaction), the rest on
the reader's. Only `get` reads `data`; the other queries never touch a blob's overflow pages."""

from __future__ import annotations

import sqlite3
import time

from ...artifacts import ArtifactInfo
from .leases import _tx

__all__ = ["put", "get", "info", "page", "match"]

_INFO = "SELECT artifact_id, kind, size, created_ns FROM artifacts"


def put(conn: sqlite3.Connection, artifact_id: str, kind: str, data: bytes, created_ns: int | None) -> bool:
    """Insert unless the id is there already (same id, same bytes); True if it was new."""
    def go(conn):
        cur = conn.execute(
            "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?)",
            (artifact_id, kind, len(data), created_ns or time.time_ns(), data),
        )
        return cur.rowcount == 1

    return _tx(conn, go)


def get(conn: sqlite3.Connection, artifact_id: str) -> bytes | None:
    row = conn.execute("SELECT data FROM artifacts WHERE artifact_id = ?", (artifact_id,)).fetchone()
    return None if row is None else bytes(row[0])


def info(conn: sqlite3.Connection, artifact_id: str) -> ArtifactInfo | None:
    row = conn.execute(f"{_INFO} WHERE artifact_id = ?", (artifact_id,)).fetchone()
    return None if row is None else ArtifactInfo(artifact_id=row[0], kind=row[1], size=row[2], created_ns=row[3])


def page(conn: sqlite3.Connection, after: str, limit: int) -> list[ArtifactInfo]:
    rows = conn.execute(f"{_INFO} WHERE artifact_id > ? ORDER BY artifact_id LIMIT ?", (after, limit))
    return [ArtifactInfo(artifact_id=a, kind=k, size=s, created_ns=c) for a, k, s, c in rows.fetchall()]


def match(conn: sqlite3.Connection, prefix: str) -> list[str]:
    """Ids starting with `prefix` (hex only, checked by the caller), at most two."""
    rows = conn.execute(
        "SELECT artifact_id FROM artifacts WHERE artifact_id >= ? AND artifact_id < ? ORDER BY artifact_id LIMIT 2",
        (prefix, prefix + "g"),
    )
    return [r[0] for r in rows.fetchall()]
