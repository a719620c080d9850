"""The hash chain and seals on SQLite (kernel/chain.py, kernel/seals.py): reads, and the one write."""

from __future__ import annotations

import sqlite3

__all__ = ["chain_page", "chain_head", "seal_rows", "add_seal"]


def chain_page(conn: sqlite3.Connection, run_id: str, lo: int, limit: int) -> list[tuple]:
    """(seq, ts_ns, type, body, chain) from `lo`, in seq order."""
    return conn.execute(
        "SELECT seq, ts_ns, type, body, chain FROM events WHERE run_id = ? AND seq >= ?"
        " ORDER BY seq LIMIT ?",
        (run_id, lo, limit),
    ).fetchall()


def chain_head(conn: sqlite3.Connection, run_id: str) -> tuple[int, bytes | None] | None:
    return conn.execute(
        "SELECT seq, chain FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
    ).fetchone()


def seal_rows(conn: sqlite3.Connection, run_id: str) -> list[tuple]:
    """(seq, chain, key_id, sealed_ns, signature), oldest seq first."""
    return conn.execute(
        "SELECT seq, chain, key_id, sealed_ns, signature FROM seals WHERE run_id = ? ORDER BY seq, key_id",
        (run_id,),
    ).fetchall()


def add_seal(conn: sqlite3.Connection, row: tuple) -> bool:
    """Store (run_id, seq, chain, key_id, sealed_ns, signature); False if that key already
    sealed that seq (the first seal stays: a seal is never rewritten)."""
    cur = conn.execute("INSERT OR IGNORE INTO seals VALUES (?, ?, ?, ?, ?, ?)", row)
    return cur.rowcount == 1
