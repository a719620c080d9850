"""The secret scan over a PostgreSQL log's tables, keyset-paged (never a table in memory)."""

from __future__ import annotations

import psycopg

from ...secretscan import Finding, Scanner

_PAGE = 2000


async def _pages(conn: psycopg.AsyncConnection, select: str, key: tuple[str, ...], table: str, run_id: str | None):
    """Rows of `select` ordered by the unique `key` columns, page by page."""
    cols = ", ".join(key)
    marks = ", ".join(["%s"] * len(key))
    last: tuple | None = None
    while True:
        clauses, args = [], []
        if run_id:
            clauses.append("run_id = %s")
            args.append(run_id)
        if last is not None:
            clauses.append(f"({cols}) > ({marks})")
            args.extend(last)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        cur = await conn.execute(f"SELECT {cols}, {select} FROM vigil.{table}{where} ORDER BY {cols} LIMIT {_PAGE}", args)
        rows = await cur.fetchall()
        for row in rows:
            yield row[len(key):]
        if len(rows) < _PAGE:
            return
        last = rows[-1][: len(key)]


async def scan(conn: psycopg.AsyncConnection, run_id: str | None = None) -> tuple[list[Finding], int]:
    s = Scanner()
    async for row in _pages(conn, "run_id, seq, type, body", ("pos",), "events", run_id):
        s.event(*row)
    async for row in _pages(conn, "run_id, labels, error", ("run_id",), "runs", run_id):
        s.run(*row)
    async for row in _pages(conn, "run_id, seq, title", ("run_id", "interrupt_id"), "interrupts", run_id):
        s.interrupt(*row)
    async for row in _pages(conn, "id, run_id, body, result", ("id",), "signals", run_id):
        s.signal(*row)
    async for row in _pages(conn, "run_id, seq, state", ("run_id", "seq"), "snapshots", run_id):
        s.snapshot(*row)
    return s.found, s.rows
