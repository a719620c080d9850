"""The hash chain and seals on PostgreSQL (kernel/chain.py, kernel/seals.py): reads, and the one write."""

from __future__ import annotations

import psycopg

__all__ = ["chain_page", "chain_head", "seal_rows", "add_seal"]

Conn = psycopg.AsyncConnection


async def chain_page(conn: Conn, run_id: str, lo: int, limit: int) -> list[tuple]:
    """(seq, ts_ns, type, body, chain) from `lo`, in seq order."""
    cur = await conn.execute(
        "SELECT seq, ts_ns, type, body, chain FROM vigil.events WHERE run_id = %s AND seq >= %s"
        " ORDER BY seq LIMIT %s",
        (run_id, lo, limit),
    )
    return [(s, t, ty, bytes(b), bytes(c) if c is not None else None) for s, t, ty, b, c in await cur.fetchall()]


async def chain_head(conn: Conn, run_id: str) -> tuple[int, bytes | None] | None:
    cur = await conn.execute(
        "SELECT seq, chain FROM vigil.events WHERE run_id = %s ORDER BY seq DESC LIMIT 1", (run_id,)
    )
    row = await cur.fetchone()
    return (row[0], bytes(row[1]) if row[1] is not None else None) if row else None


async def seal_rows(conn: Conn, run_id: str) -> list[tuple]:
    """(seq, chain, key_id, sealed_ns, signature), oldest seq first."""
    cur = await conn.execute(
        "SELECT seq, chain, key_id, sealed_ns, signature FROM vigil.seals WHERE run_id = %s"
        " ORDER BY seq, key_id",
        (run_id,),
    )
    return [(s, bytes(c), k, n, bytes(sig)) for s, c, k, n, sig in await cur.fetchall()]


async def add_seal(conn: Conn, row: tuple) -> bool:
    """Store (run_id, seq, chain, key_id, sealed_ns, signature); False if that key already
    sealed that seq (the first seal stays: a seal is never rewritten)."""
    cur = await conn.execute(
        "INSERT INTO vigil.seals VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", row
    )
    return cur.rowcount == 1
