"""Ownership of runs and the signals other processes send their owners (run on the writer thread).

Only a run's owner appends to it. Another process asks the owner to act (resolve an interrupt,
cancel) by inserting a signal; the owner applies it, records the outcome, and the sender reads it.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec

__all__ = ["Signal", "claim", "renew", "release", "send", "pending", "finish", "result"]

_enc = msgspec.json.Encoder()
_dec = msgspec.json.decode


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    run_id: str
    kind: str
    body: dict[str, Any]
    sender: str | None
    created_ns: int


def _tx(conn: sqlite3.Connection, fn, *args):
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn(conn, *args)
        conn.execute("COMMIT")
        return out
    except BaseException:
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


def send(conn: sqlite3.Connection, run_id: str, kind: str, body: dict, sender: str) -> int:
    return _tx(conn, lambda c: c.execute(
        "INSERT INTO signals(run_id, kind, body, created_ns, sender) VALUES (?, ?, ?, ?, ?)",
        (run_id, kind, _enc.encode(body), time.time_ns(), sender),
    ).lastrowid)


def pending(conn: sqlite3.Connection, owner: str) -> list[Signal]:
    rows = conn.execute(
        "SELECT s.id, s.run_id, s.kind, s.body, s.sender, s.created_ns FROM signals s"
        " JOIN runs r ON r.run_id = s.run_id WHERE s.applied_ns IS NULL AND r.owner = ? ORDER BY s.id",
        (owner,),
    )
    return [
        Signal(id=i, run_id=r, kind=k, body=_dec(b), sender=s, created_ns=t)
        for i, r, k, b, s, t in rows
    ]


def finish(conn: sqlite3.Connection, signal_id: int, outcome: str) -> None:
    _tx(conn, lambda c: c.execute(
        "UPDATE signals SET applied_ns = ?, result = ? WHERE id = ?",
        (time.time_ns(), outcome, signal_id),
    ))


def result(conn: sqlite3.Connection, signal_id: int) -> str | None:
    row = conn.execute("SELECT applied_ns, result FROM signals WHERE id = ?", (signal_id,)).fetchone()
    return row[1] if row and row[0] is not None else None
