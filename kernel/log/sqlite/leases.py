"""Ownership of runs and the signals table, in SQLite (run on the writer's thread).

Lease times come from this host's clock: a SQLite log lives on one host, so it is the database's.
"""

from __future__ import annotations

import sqlite3
import time

from ...events import Actor
from ...redact import redact
from ...signals import Signal, sealed_body, sender_text

__all__ = ["claim", "renew", "release", "send", "pending", "finish", "result"]


def _tx(conn: sqlite3.Connection, fn, *args):
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn, *args)
        conn.execute("COMMIT")
        return out
    except BaseException:
        if conn.in_transaction:  # SQLite has already rolled back after some errors (disk full)
            conn.execute("ROLLBACK")
        raise


def claim(conn: sqlite3.Connection, run_id: str, owner: str, lease_ns: int, previous: str | None) -> bool:
    """Take `run_id` if it is free, ours, or still held by `previous` (found dead by the caller)."""

    def go(conn):
        now = time.time_ns()
        cur = conn.execute(
            "UPDATE runs SET owner = ?, lease_until_ns = ? WHERE run_id = ? AND status IN ('running', 'waiting', 'paused')"
            " AND (owner IS NULL OR owner = ? OR owner = ? OR lease_until_ns < ?)",
            (owner, now + lease_ns, run_id, owner, previous, now),
        )
        return cur.rowcount == 1

    return _tx(conn, go)


def renew(conn: sqlite3.Connection, owner: str, lease_ns: int) -> None:
    _tx(conn, lambda c: c.execute(
        "UPDATE runs SET lease_until_ns = ? WHERE owner = ?", (time.time_ns() + lease_ns, owner)
    ))


def release(conn: sqlite3.Connection, run_ids: list[str], owner: str) -> None:
    def go(conn):
        for run_id in run_ids:
            conn.execute(
                "UPDATE runs SET owner = NULL, lease_until_ns = NULL WHERE run_id = ? AND owner = ?",
                (run_id, owner),
            )

    _tx(conn, go)


def send(conn: sqlite3.Connection, run_id: str, kind: str, body: dict, sender: Actor | str) -> int:
    """Queue a signal."""
    return _tx(conn, lambda c: c.execute(
        "INSERT INTO signals(run_id, kind, body, created_ns, sender) VALUES (?, ?, ?, ?, ?)",
        (run_id, kind, sealed_body(body), time.time_ns(), sender_text(sender)),
    ).lastrowid)


def pending(conn: sqlite3.Connection, owner: str) -> list[Signal]:
    # As bytes: a text column that is not UTF-8 would otherwise fail the whole fetch.
    rows = conn.execute(
        "SELECT s.id, r.run_id, CAST(s.kind AS BLOB), CAST(s.body AS BLOB), CAST(s.sender AS BLOB),"
        " s.created_ns FROM signals s JOIN runs r ON r.run_id = s.run_id"
        " WHERE s.applied_ns IS NULL AND r.owner = ? ORDER BY s.id",
        (owner,),
    )
    return [
        Signal(
            id=i, run_id=r, kind=(k or b"").decode("utf-8", "replace"), body=bytes(b or b""),
            sender=None if s is None else bytes(s), created_ns=t if isinstance(t, int) else 0,
        )
        for i, r, k, b, s, t in rows
    ]


def finish(conn: sqlite3.Connection, signal_id: int, outcome: str) -> None:
    _tx(conn, lambda c: c.execute(
        "UPDATE signals SET applied_ns = ?, result = ? WHERE id = ?",
        (time.time_ns(), redact(outcome), signal_id),
    ))


def result(conn: sqlite3.Connection, signal_id: int) -> str | None:
    row = conn.execute("SELECT applied_ns, result FROM signals WHERE id = ?", (signal_id,)).fetchone()
    return row[1] if row and row[0] is not None else None
