"""The secret scan over a SQLite log's tables, on a reader connection, page by page."""

from __future__ import annotations

import sqlite3
from typing import Iterator

from ...secretscan import Finding, Scanner

__all__ = ["scan"]

_PAGE = 2000


def _rows(conn: sqlite3.Connection, sql: str, args: tuple) -> Iterator[tuple]:
    cur = conn.execute(sql, args)
    while batch := cur.fetchmany(_PAGE):
        yield from batch


def scan(conn: sqlite3.Connection, run_id: str | None = None) -> tuple[list[Finding], int]:
    """Everything that looks like a secret (in one run, or the whole log), and how many rows
    were looked at."""
    where, args = ("WHERE run_id = ?", (run_id,)) if run_id else ("", ())
    s = Scanner()
    for row in _rows(conn, f"SELECT run_id, seq, type, body FROM events {where} ORDER BY pos", args):
        s.event(*row)
    for row in _rows(conn, f"SELECT run_id, labels, error FROM runs {where}", args):
        s.run(*row)
    for row in _rows(conn, f"SELECT run_id, seq, title FROM interrupts {where}", args):
        s.interrupt(*row)
    for row in _rows(conn, f"SELECT id, run_id, body, result FROM signals {where} ORDER BY id", args):
        s.signal(*row)
    for row in _rows(conn, f"SELECT run_id, seq, state FROM snapshots {where}", args):
        s.snapshot(*row)
    return s.found, s.rows
