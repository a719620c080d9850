"""One group commit on SQLite: BEGIN IMMEDIATE, the rows, the projections, COMMIT, as a single
call on the writer's thread (kernel/log/groupcommit.py forms the groups)."""

from __future__ import annotations

import sqlite3
import time
from typing import Callable

from ...projection import RUN_COLUMNS, advance, new_row
from ..groupcommit import Append, Committed, GroupWriter, Heads, plan
from .sqlthread import SqlThread

__all__ = ["sqlite_writer"]

# Row layout: (run_id, seq, ts_ns, type, step_id, body, crc, chain)
_INSERT_EVENT = (
    "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc, chain)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# An upsert, not INSERT OR REPLACE: REPLACE deletes and re-inserts, rewriting every index entry
# of the row on each change; an update leaves the entries of unchanged columns alone.
_UPSERT_RUN = (
    f"INSERT INTO runs({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
    " ON CONFLICT(run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "run_id")
)
_SELECT_RUNS = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id IN ({{}})"
# One probe per run: SQLite answers max() from the (run_id, seq) index only without GROUP BY.
_LAST_SEQ = "SELECT max(seq) FROM events WHERE run_id = ?"
_CHAIN_AT = "SELECT chain FROM events WHERE run_id = ? AND seq = ?"


def _in_chunks(conn: sqlite3.Connection, sql: str, keys: list[str]) -> list[tuple]:
    """`sql` with its `IN ({})` filled, run over the keys 500 at a time (SQLite's variable cap)."""
    out: list[tuple] = []
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        out.extend(conn.execute(sql.format(", ".join("?" * len(chunk))), chunk))
    return out


def _chain_at(conn: sqlite3.Connection, run_id: str, seq: int) -> bytes | None:
    row = conn.execute(_CHAIN_AT, (run_id, seq)).fetchone()
    return row[0] if row else None


def _commit_group(
    conn: sqlite3.Connection, group: list[Append], known: dict[str, int], heads: Heads
) -> tuple[list, Committed]:
    """One transaction for the whole group. `known` caches each run's last seq as this writer
    left it (`heads` its last chain); a cached value that disagrees with a caller is checked
    against the table, and the UNIQUE(run_id, seq) index catches another process having
    appended meanwhile."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        p = plan(
            group, known, lambda run_id: conn.execute(_LAST_SEQ, (run_id,)).fetchone()[0] or 0,
            heads, lambda run_id, seq: _chain_at(conn, run_id, seq),
        )
        if p.rows:
            conn.executemany(_INSERT_EVENT, p.rows)
        if p.projecting:
            _project(conn, p.projecting)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for a in group:
            known.pop(a.run_id, None)
            heads.pop(a.run_id, None)
        raise
    known.update(p.last)
    heads.update(p.heads)
    return p.outcomes, p.committed()


def _project(conn: sqlite3.Connection, appends: list[Append]) -> None:
    """Advance the runs and interrupts projections for the appends that change them."""
    rows = {
        r[0]: dict(zip(RUN_COLUMNS, r))
        for r in _in_chunks(conn, _SELECT_RUNS, list({a.run_id for a in appends}))
    }
    interrupt_ops: list[tuple] = []
    for a in appends:
        row = rows.get(a.run_id)
        if row is None:
            row = rows[a.run_id] = new_row(a.run_id, a.rows[0][2])
            if a.claim is not None:  # (owner, lease_ns): this host's clock is the log's
                row["owner"], row["lease_until_ns"] = a.claim[0], time.time_ns() + a.claim[1]
        for r, event in zip(a.rows, a.events):
            advance(row, event, r[1], r[2], interrupt_ops)
    conn.executemany(_UPSERT_RUN, [tuple(row[c] for c in RUN_COLUMNS) for row in rows.values()])
    for op in interrupt_ops:
        if op[0] == "raise":
            conn.execute("INSERT OR REPLACE INTO interrupts VALUES (?, ?, ?, ?, ?, ?, NULL)", op[1:])
        elif op[0] == "close":
            conn.execute(
                "UPDATE interrupts SET resolved_seq = ? WHERE run_id = ? AND resolved_seq IS NULL",
                (op[3], op[1]),
            )
        else:
            conn.execute(
                "UPDATE interrupts SET resolved_seq = ? WHERE run_id = ? AND interrupt_id = ?",
                (op[3], op[1], op[2]),
            )




def sqlite_writer(thread: SqlThread, on_commit: Callable[[Committed], None]) -> GroupWriter:
    known: dict[str, int] = {}  # run -> last seq, touched only on the writer thread
    heads: Heads = {}  # run -> (last seq, its chain), likewise

    async def commit(group: list[Append]) -> tuple[list, Committed]:
        return await thread.call(_commit_group, group, known, heads)

    # A value SQLite cannot bind (OverflowError, UnicodeError) fails its batch, not the store.
    return GroupWriter(
        commit, on_commit,
        refused=(sqlite3.Error, OverflowError, UnicodeError), conflict=(sqlite3.IntegrityError,),
    )
